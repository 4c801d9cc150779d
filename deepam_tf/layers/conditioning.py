import keras


@keras.saving.register_keras_serializable(package="deepam_tf")
class NoiseLevelMap(keras.layers.Layer):
    """Broadcasts a per-image noise level ``[B, 1]`` to a map ``[B, H, W, 1]``.

    The map is concatenated to each aggregation network's input of a noise-level
    conditioned DeepAM (as FFDNet does), so one model serves every σ.

    Example:
        >>> NoiseLevelMap()(keras.ops.zeros([2, 8, 9, 1]), keras.ops.ones([2, 1])).shape
        (2, 8, 9, 1)
    """

    def call(self, image, noise_level):
        noise_level = keras.ops.cast(noise_level, self.compute_dtype)
        base = image if image.shape[-1] == 1 else image[..., :1]
        # base * 0, not ones_like: a static-shape export would store ones_like as an
        # H x W constant.
        return keras.ops.cast(base, self.compute_dtype) * 0.0 + noise_level[:, None, None, :]

    def compute_output_shape(self, image_shape, noise_level_shape=None):
        return tuple(image_shape)[:-1] + (1,)
