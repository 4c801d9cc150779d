"""deepam_tf: DeepAM (Kim, Jung, Min, Sohn, CVPR 2017) in TensorFlow / Keras 3."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from deepam_tf.native_log import captured_native_stderr  # noqa: E402

with captured_native_stderr():  # a no-op when TensorFlow is already imported
    import tensorflow  # noqa: F401

from deepam_tf import hardware, layers, metrics, ops  # noqa: E402
from deepam_tf.classic_am import classic_am  # noqa: E402
from deepam_tf.evaluation import evaluate  # noqa: E402
from deepam_tf.models import DeepAM, list_presets, load_preset  # noqa: E402
from deepam_tf.restore import denoise, restore_with_nir, upsample_depth  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "DeepAM",
    "classic_am",
    "denoise",
    "evaluate",
    "hardware",
    "layers",
    "list_presets",
    "load_preset",
    "metrics",
    "ops",
    "restore_with_nir",
    "upsample_depth",
]
