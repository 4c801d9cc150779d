import keras

from deepam_tf.ops import reconstruction as reconstruct_ops


@keras.saving.register_keras_serializable(package="deepam_tf")
class Reconstruction(keras.layers.Layer):
    """DeepAM's weight-free reconstruction layer: ``u = (Γ + DᵀD)⁻¹ (Γ f + Dᵀ v)``.

    Wraps :func:`deepam_tf.ops.reconstruct` (PCG with an exact custom gradient). The
    solve always runs in float32 (or float64 for float64 inputs), also under a mixed
    precision policy.

    Args:
        iterations: int. Maximum PCG iterations (exact count when ``unrolled``).
        tolerance: float. Relative-residual stop.
        preconditioner: ``"dct"`` or ``"jacobi"``.
        unrolled: bool. Fixed-iteration straight-line form for static-shape exports.

    Example:
        >>> f = keras.ops.ones([1, 8, 8, 1])
        >>> Reconstruction()(f, keras.ops.zeros([1, 8, 8, 2]), keras.ops.ones([1, 8, 8, 1])).shape
        (1, 8, 8, 1)

    Reference: Kim et al., CVPR 2017, §3.1, eq. (6).
    """

    def __init__(
        self,
        iterations=reconstruct_ops.DEFAULT_ITERATIONS,
        tolerance=reconstruct_ops.DEFAULT_TOLERANCE,
        preconditioner=reconstruct_ops.DEFAULT_PRECONDITIONER,
        unrolled=False,
        **kwargs,
    ):
        reconstruct_ops.check_options(iterations, tolerance, preconditioner)
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.iterations = iterations
        self.tolerance = tolerance
        self.preconditioner = preconditioner
        self.unrolled = unrolled
        self.built = True

    def call(self, image, v, gamma):
        dtype = "float64" if image.dtype == "float64" else "float32"
        image, v, gamma = (keras.ops.cast(t, dtype) for t in (image, v, gamma))
        return reconstruct_ops.reconstruct(
            image,
            v,
            gamma,
            iterations=self.iterations,
            tolerance=self.tolerance,
            preconditioner=self.preconditioner,
            unrolled=self.unrolled,
        )

    def compute_output_shape(self, image_shape, v_shape=None, gamma_shape=None):
        return tuple(image_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            iterations=self.iterations,
            tolerance=self.tolerance,
            preconditioner=self.preconditioner,
            unrolled=self.unrolled,
        )
        return config
