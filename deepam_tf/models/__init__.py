"""DeepAM models."""

from deepam_tf.models.deepam import DeepAM

__all__ = ["DeepAM"]
