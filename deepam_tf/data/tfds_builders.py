"""TFDS builders for the benchmark sets, which cannot be downloaded automatically.

They read TFDS's ``manual_dir``: put the images in ``<manual_dir>/<config>/`` (the
benchmark data's ``denoise/`` folder has exactly that layout), then::

    import tensorflow_datasets as tfds
    import deepam_tf.data.tfds_builders  # registers "deepam_denoise"
    ds = tfds.load("deepam_denoise/bsd68", split="test",
                   download_and_prepare_kwargs={"download_config":
                       tfds.download.DownloadConfig(manual_dir="<data>/denoise")})
"""

import os

import numpy as np
import tensorflow_datasets as tfds

from deepam_tf.data.pipelines import list_images
from deepam_tf.image_io import read_image_file, rgb_to_gray


class DeepamDenoise(tfds.core.GeneratorBasedBuilder):
    """Grayscale denoising benchmarks: Train400 (train), BSD68 and Set12 (test)."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Place the images in <manual_dir>/train400/, <manual_dir>/bsd68/ and "
        "<manual_dir>/set12/ (8-bit grayscale PNG), e.g. manual_dir=<data>/denoise."
    )
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="train400", description="400 BSD 180x180 training images"),
        tfds.core.BuilderConfig(name="bsd68", description="68 BSD test images (Roth & Black)"),
        tfds.core.BuilderConfig(name="set12", description="12 classic test images"),
    ]

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 1), dtype=np.uint8),
                "file_name": tfds.features.Text(),
            }),
            supervised_keys=None,
            citation="Kim, Jung, Min, Sohn, Deeply Aggregated Alternating Minimization "
            "for Image Restoration, CVPR 2017 (benchmark sets as packaged by DnCNN)",
        )

    def _split_generators(self, dl_manager):
        folder = os.path.join(dl_manager.manual_dir, self.builder_config.name)
        split = "train" if self.builder_config.name == "train400" else "test"
        return {split: self._generate_examples(folder)}

    def _generate_examples(self, folder):
        for path in list_images(folder):
            name = os.path.basename(path)
            yield name, {"image": _gray8(path)[:, :, None], "file_name": name}


def _gray8(path):
    """An 8-bit image file as uint8 gray ``[H, W]``; colour by its luma, as the evaluation
    reads it (:func:`deepam_tf.evaluation.read_gray`)."""
    image = read_image_file(path)
    if image.dtype != np.uint8:
        raise ValueError(f"{path}: the deepam_denoise sets hold 8-bit images, got {image.dtype}")
    return image if image.ndim == 2 else np.round(rgb_to_gray(image.astype(np.float32))).astype(np.uint8)
