import keras


@keras.saving.register_keras_serializable(package="deepam_tf")
class GuidanceNetwork(keras.layers.Layer):
    """Guidance branch for joint restoration: ``depth`` convolutions 3×3 + ReLU.

    Its features are concatenated to the aggregation network's ``fusion_layer`` output
    (see :class:`AggregationNetwork`). Under a mixed dtype policy the guidance image and
    the first convolution stay in the weights' dtype (float32).

    Args:
        features: int. Feature maps per layer (paper: 64).
        depth: int. Number of convolution layers (paper: 3).
        kernel_initializer, kernel_regularizer: passed to every convolution.

    Example:
        >>> GuidanceNetwork()(keras.ops.zeros([1, 16, 16, 3])).shape
        (1, 16, 16, 64)

    Reference: Kim et al., CVPR 2017, §3.2 (joint restoration, halfway fusion).
    """

    def __init__(
        self,
        features=64,
        depth=3,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.features = features
        self.depth = depth
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.convs = [
            keras.layers.Conv2D(
                features,
                3,
                padding="same",
                activation="relu",
                kernel_initializer=self.kernel_initializer,
                kernel_regularizer=self.kernel_regularizer,
                name=f"conv{i + 1}",
                # The first convolution reads the image: see AggregationNetwork.
                dtype=self.dtype_policy if i else self.dtype_policy.variable_dtype,
            )
            for i in range(depth)
        ]

    @property
    def input_dtype(self):
        """The guidance image arrives in the weights' dtype (float32 under a mixed policy)."""
        return self.dtype_policy.variable_dtype

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv in self.convs:
            conv.build(shape)
            shape = shape[:-1] + (self.features,)

    def call(self, guidance):
        x = guidance
        for conv in self.convs:
            x = conv(x)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.features,)

    def get_config(self):
        config = super().get_config()
        config.update(
            features=self.features,
            depth=self.depth,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
