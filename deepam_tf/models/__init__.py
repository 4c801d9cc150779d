"""DeepAM models."""

from deepam_tf.models.deepam import DeepAM
from deepam_tf.models.presets import list_presets, load_preset

__all__ = ["DeepAM", "list_presets", "load_preset"]
