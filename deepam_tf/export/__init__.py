"""Serving exports: SavedModel for TF-Serving."""

from deepam_tf.export.saved_model import export_saved_model

__all__ = ["export_saved_model"]
