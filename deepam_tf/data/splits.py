"""The fixed train/validation/test splits (folders relative to the data folder)."""

import logging
import os

from deepam_tf.data.pairs import find_overlaps, list_pairs
from deepam_tf.data.pipelines import list_images

logger = logging.getLogger("deepam_tf")

DENOISE_TRAIN = "denoise/train400"
# The training images that choose between weights (benchmarks/compare_weights.py) and
# that no fit on DENOISE_TRAIN sees: every 10th from the 6th, 40 of them.
DENOISE_VALIDATION = {"first": 5, "every": 10, "limit": 40}

DEPTH_TEST_SETS = ("depth_sr/middlebury10",)
DEPTH_TRAIN_SETS = ("depth_sr/middlebury30", "depth_sr/lu6")

RGB_NIR_FOLDER = "rgb_nir/pairs"
RGB_NIR_TEST = ("fgdnet_urban_0000", "mhlp_normal_002")
RGB_NIR_TRAIN = ("imagefusion_0000", "mhlp_haze_001", "mhlp_haze_002", "mhlp_normal_001")
# Dark, noisy RGB: no clean reference, qualitative demos only (see the data README).
RGB_NIR_DEMO = ("mhlp_lowlight_001", "mhlp_lowlight_002")


def denoise_validation(paths, first=DENOISE_VALIDATION["first"],
                       every=DENOISE_VALIDATION["every"], limit=DENOISE_VALIDATION["limit"]):
    """The validation subset of sorted training ``paths``: every ``every``-th from index
    ``first``, at most ``limit``."""
    return paths[first::every][:limit]


def denoise_fit_paths(root):
    """The images of :data:`DENOISE_TRAIN` outside :func:`denoise_validation`."""
    paths = list_images(os.path.join(root, DENOISE_TRAIN))
    held_out = set(denoise_validation(paths))
    return [path for path in paths if path not in held_out]


def depth_test_pairs(root):
    """``[(depth, rgb)]`` of the depth-SR test scenes."""
    return [pair for folder in DEPTH_TEST_SETS for pair in list_pairs(os.path.join(root, folder))]


def depth_train_pairs(root):
    """``[(depth, rgb)]`` for training: the training sets minus every scene whose
    content matches a test scene (by thumbnails, whatever its name or resolution)."""
    train = [pair for folder in DEPTH_TRAIN_SETS for pair in list_pairs(os.path.join(root, folder))]
    overlaps = find_overlaps(train, depth_test_pairs(root))
    removed = {pair for pair, _, _ in overlaps}
    for pair, test, score in overlaps:
        logger.info("training scene %s matches test scene %s (%.3f): removed",
                    os.path.basename(pair[0]), os.path.basename(test[0]), score)
    return [pair for pair in train if pair not in removed]


def rgb_nir_pairs(root, split):
    """``[(rgb, nir)]`` of the ``"train"``, ``"test"`` or ``"demo"`` split."""
    names = {"train": RGB_NIR_TRAIN, "test": RGB_NIR_TEST, "demo": RGB_NIR_DEMO}
    if split not in names:
        raise ValueError(f"split must be one of {sorted(names)}, got {split!r}")
    return list_pairs(os.path.join(root, RGB_NIR_FOLDER), "rgb", "nir", names=names[split])
