"""Plain TensorFlow math of DeepAM: difference operators, PCG and the reconstruction."""

from deepam_tf.ops import pcg
from deepam_tf.ops.differences import (
    gradient,
    gradient_adjoint,
    neumann_laplacian,
)
from deepam_tf.ops.pcg import PRECONDITIONERS
from deepam_tf.ops.reconstruction import reconstruct

__all__ = [
    "PRECONDITIONERS",
    "gradient",
    "gradient_adjoint",
    "neumann_laplacian",
    "pcg",
    "reconstruct",
]
