import keras


@keras.saving.register_keras_serializable(package="deepam_tf")
class GammaNetwork(keras.layers.Layer):
    """The γ-parameter network: a spatially varying fidelity weight ``γ >= floor``.

    One convolution 3×3 on the aggregation network's intermediate features, a ReLU,
    plus a small ``floor`` so that ``Γ + DᵀD`` stays positive definite. ``γ = λ/β`` of
    the alternating minimisation, learned per pixel and per stage (the learned
    β-continuation). The bias starts at ``initial_gamma``.

    Args:
        channels: int. Image channels C; γ has C maps.
        floor: float. Added to the ReLU output.
        initial_gamma: float. Initial bias, so γ starts near this value.
        kernel_initializer, kernel_regularizer: passed to the convolution.

    Example:
        >>> gamma = GammaNetwork(channels=1)(keras.ops.ones([2, 32, 32, 64]))
        >>> gamma.shape
        (2, 32, 32, 1)

    Reference: Kim et al., CVPR 2017, §3.1 (γ read off the 8th layer).
    """

    def __init__(
        self,
        channels,
        floor=1e-3,
        initial_gamma=0.1,
        kernel_initializer=None,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = channels
        self.floor = floor
        self.initial_gamma = initial_gamma
        # Small initial weights: γ starts near initial_gamma everywhere.
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.RandomNormal(stddev=1e-3)
        )
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.conv = keras.layers.Conv2D(
            channels,
            3,
            padding="same",
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            bias_initializer=keras.initializers.Constant(initial_gamma),
            name="conv",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, features):
        return keras.ops.relu(self.conv(features)) + self.floor

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.channels,)

    def get_config(self):
        config = super().get_config()
        config.update(
            channels=self.channels,
            floor=self.floor,
            initial_gamma=self.initial_gamma,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
