"""The fixed train/test splits of the joint tasks (folders relative to the data folder)."""

import logging
import os

from deepam_tf.data.pairs import find_overlaps, list_pairs

logger = logging.getLogger("deepam_tf")

DEPTH_TEST_SETS = ("depth_sr/middlebury10",)
DEPTH_TRAIN_SETS = ("depth_sr/middlebury30", "depth_sr/lu6")

RGB_NIR_FOLDER = "rgb_nir/pairs"
RGB_NIR_TEST = ("fgdnet_urban_0000", "mhlp_normal_002")
RGB_NIR_TRAIN = ("imagefusion_0000", "mhlp_haze_001", "mhlp_haze_002", "mhlp_normal_001")
# Dark, noisy RGB: no clean reference, qualitative demos only (see the data README).
RGB_NIR_DEMO = ("mhlp_lowlight_001", "mhlp_lowlight_002")


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
