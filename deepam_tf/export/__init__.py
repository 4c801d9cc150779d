"""Serving exports: SavedModel for TF-Serving, TFLite for phones."""

from deepam_tf.export.saved_model import export_saved_model
from deepam_tf.export.tflite import export_tflite

__all__ = ["export_saved_model", "export_tflite"]
