import keras

from deepam_tf.ops import differences


@keras.saving.register_keras_serializable(package="deepam_tf")
class AggregationNetwork(keras.layers.Layer):
    """DeepAM's deep aggregation network: the learned proximal step ``u_k -> v``.

    ``depth`` convolutions 3×3 with ``features`` maps, each but the last followed by
    batch-norm and ReLU; the last outputs ``v`` with ``2 * channels`` maps (x then y
    gradients, no activation). Guidance features, when given, are concatenated to the
    output of layer ``fusion_layer`` ("halfway" fusion); ``conditioning`` maps (e.g. a
    noise-level map) are concatenated to the input of the first layer. The layer returns ``v`` and the
    features of layer ``gamma_layer``, from which :class:`GammaNetwork` reads γ.
    Under a mixed dtype policy the input, the first convolution and ``v`` stay in the
    weights' dtype (float32) and only the layers after the first compute in 16 bits.

    With ``residual_gradients=True`` the convolutions predict a correction to the
    gradients of the input, ``v = D u + net(u)``, and the last layer starts at zero, so
    an untrained first stage is the identity (the paper predicts ``v`` directly:
    ``residual_gradients=False``).

    Args:
        channels: int. Image channels C; ``v`` has 2C.
        features: int. Feature maps per hidden layer (paper: 64).
        depth: int. Number of convolution layers (paper: 10).
        gamma_layer: int. 1-based index of the layer whose features are returned.
        fusion_layer: int. 1-based index of the layer after which guidance is fused.
        residual_gradients: bool. Add ``gradient(u)`` to the last layer's output.
        kernel_initializer, kernel_regularizer: passed to every convolution.

    Example:
        >>> net = AggregationNetwork(channels=1)
        >>> v, features = net(keras.ops.zeros([2, 32, 32, 1]))
        >>> v.shape, features.shape
        ((2, 32, 32, 2), (2, 32, 32, 64))

    Reference: Kim, Jung, Min, Sohn, "Deeply Aggregated Alternating Minimization for
    Image Restoration", CVPR 2017, §3.1.
    """

    def __init__(
        self,
        channels,
        features=64,
        depth=10,
        gamma_layer=8,
        fusion_layer=3,
        residual_gradients=True,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 1 <= fusion_layer < depth or not 1 <= gamma_layer < depth:
            raise ValueError(
                f"fusion_layer and gamma_layer must be in [1, depth), got "
                f"{fusion_layer}, {gamma_layer} for depth {depth}"
            )
        self.channels = channels
        self.features = features
        self.depth = depth
        self.gamma_layer = gamma_layer
        self.fusion_layer = fusion_layer
        self.residual_gradients = residual_gradients
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        conv = dict(
            kernel_size=3,
            padding="same",
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
        )
        # Under a mixed policy the first convolution computes in the weights' dtype: it
        # reads the image itself, whose steps a 16-bit float would round away (bfloat16
        # keeps 8 bits: 1/256 near 1).
        exact = dict(conv, dtype=self.dtype_policy.variable_dtype)
        self.convs = [
            keras.layers.Conv2D(features, use_bias=False, name=f"conv{i + 1}", **(conv if i else exact))
            for i in range(depth - 1)
        ]
        # With residual gradients a zero last layer makes an untrained stage the identity:
        # v = D u_k and f = u_k give u_{k+1} = u_k.
        if residual_gradients:
            conv["kernel_initializer"] = "zeros"
        self.convs.append(keras.layers.Conv2D(2 * channels, name=f"conv{depth}", **conv))
        self.norms = [
            keras.layers.BatchNormalization(name=f"bn{i + 1}", dtype=self.dtype_policy)
            for i in range(depth - 1)
        ]

    def build(self, inputs_shape, guidance_features_shape=None, conditioning_shape=None):
        shape = tuple(inputs_shape)
        if conditioning_shape is not None:
            shape = shape[:-1] + (shape[-1] + conditioning_shape[-1],)
        for i, (conv, norm) in enumerate(zip(self.convs[:-1], self.norms)):
            conv.build(shape)
            shape = shape[:-1] + (self.features,)
            norm.build(shape)
            if i + 1 == self.fusion_layer and guidance_features_shape is not None:
                shape = shape[:-1] + (self.features + guidance_features_shape[-1],)
        self.convs[-1].build(shape)

    @property
    def input_dtype(self):
        """Inputs arrive in the weights' dtype (float32 under a mixed policy), so the first
        convolution and ``D u`` see the image unrounded."""
        return self.dtype_policy.variable_dtype

    def call(self, inputs, guidance_features=None, conditioning=None, training=None):
        x = inputs
        if conditioning is not None:
            x = keras.ops.concatenate([x, keras.ops.cast(conditioning, x.dtype)], axis=-1)
        gamma_features = None
        for i, (conv, norm) in enumerate(zip(self.convs[:-1], self.norms)):
            x = keras.ops.relu(norm(conv(x), training=training))
            if i + 1 == self.fusion_layer and guidance_features is not None:
                x = keras.ops.concatenate([x, keras.ops.cast(guidance_features, x.dtype)], axis=-1)
            if i + 1 == self.gamma_layer:
                gamma_features = x
        v = keras.ops.cast(self.convs[-1](x), inputs.dtype)
        if self.residual_gradients:
            v = v + differences.gradient(inputs)
        return v, gamma_features

    def compute_output_shape(
        self, inputs_shape, guidance_features_shape=None, conditioning_shape=None
    ):
        batch_hw = tuple(inputs_shape)[:-1]
        return batch_hw + (2 * self.channels,), batch_hw + (self.features,)

    def get_config(self):
        config = super().get_config()
        config.update(
            channels=self.channels,
            features=self.features,
            depth=self.depth,
            gamma_layer=self.gamma_layer,
            fusion_layer=self.fusion_layer,
            residual_gradients=self.residual_gradients,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
