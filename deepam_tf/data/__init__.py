"""Data: degradations and tf.data pipelines."""

import os

from deepam_tf.data.degradations import (
    DepthDownsampling,
    GaussianNoise,
    downsample_nearest,
    upsample_bilinear,
)
from deepam_tf.data.synthetic import depth_scene
from deepam_tf.data.pairs import check_pairs, find_overlaps, list_pairs, pair_key, paired_dataset
from deepam_tf.data.pipelines import (
    IMAGE_EXTENSIONS,
    check_images,
    check_scales,
    evaluation_dataset,
    image_dataset,
    list_images,
    patch_dataset,
    read_image,
    read_image_checked,
    rescale,
    rescaled_size,
    tfds_image_dataset,
)


def data_dir(path=None):
    """The benchmark data folder: ``path``, else ``$DEEPAM_DATA``, else ``../shared/data``
    beside the current folder's project when it exists; ValueError when none is found."""
    candidates = [path, os.environ.get("DEEPAM_DATA"), os.path.join("..", "shared", "data")]
    for candidate in candidates:
        if candidate and os.path.isdir(candidate):
            return os.path.abspath(candidate)
    if path or os.environ.get("DEEPAM_DATA"):
        raise ValueError(f"data folder {path or os.environ['DEEPAM_DATA']} does not exist")
    raise ValueError("no data folder: pass one (--data-dir, data_dir=), set DEEPAM_DATA, or "
                     "run from a folder where ../shared/data exists")


__all__ = [
    "IMAGE_EXTENSIONS",
    "DepthDownsampling",
    "GaussianNoise",
    "check_images",
    "check_scales",
    "check_pairs",
    "downsample_nearest",
    "find_overlaps",
    "list_pairs",
    "pair_key",
    "paired_dataset",
    "upsample_bilinear",
    "data_dir",
    "depth_scene",
    "evaluation_dataset",
    "image_dataset",
    "list_images",
    "patch_dataset",
    "read_image",
    "read_image_checked",
    "rescale",
    "rescaled_size",
    "tfds_image_dataset",
]
