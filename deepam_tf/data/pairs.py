"""Aligned image pairs for the joint tasks: depth + RGB, RGB + NIR.

A pair set is a folder with one sub-folder per modality (``depth/`` and ``rgb/``, or
``rgb/`` and ``nir/``); files pair up by name once the modality suffix is dropped
(``Middlebury_01_output_depth.png`` <-> ``Middlebury_01_output_color.png``).
"""

import os
import re

import numpy as np
import tensorflow as tf

from deepam_tf.data.pipelines import check_images, decoded_in_python, list_images, read_image

_MODALITY_SUFFIX = re.compile(r"_(output|ouput)_(color|depth)$|_(rgb|nir|gt|depth|color)$")


def pair_key(path):
    """The name two files of a pair share: the stem without a modality suffix."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return _MODALITY_SUFFIX.sub("", stem)


def list_pairs(folder, image="depth", guidance="rgb", names=None):
    """``[(image_file, guidance_file)]`` from ``folder/image`` and ``folder/guidance``,
    sorted by name; ``names`` keeps only those pair keys. ValueError when a file has no
    partner or a requested name is missing."""
    images = {pair_key(p): p for p in list_images(os.path.join(folder, image))}
    guides = {pair_key(p): p for p in list_images(os.path.join(folder, guidance))}
    unmatched = sorted(set(images) ^ set(guides))
    if unmatched:
        raise ValueError(f"{folder}: files without a {image}/{guidance} partner: {unmatched}")
    if names is not None:
        missing = sorted(set(names) - set(images))
        if missing:
            raise ValueError(f"{folder}: no pair named {missing}")
        images = {k: v for k, v in images.items() if k in names}
    return [(images[k], guides[k]) for k in sorted(images)]


def check_pairs(pairs, image_channels, guidance_channels):
    """Reads every pair once, so a training run stops before its first step, naming a file
    that cannot be read or a pair whose two images differ in size; returns the pairs'
    ``(height, width)``."""
    sizes = []
    for image_path, guidance_path in pairs:
        (size,) = check_images([image_path], image_channels)
        (other,) = check_images([guidance_path], guidance_channels)
        if size != other:
            raise ValueError(f"{image_path} is {size[0]}x{size[1]} but its guidance "
                             f"{guidance_path} is {other[0]}x{other[1]}")
        sizes.append(size)
    return sizes


def paired_dataset(pairs, image_channels, guidance_channels):
    """A cached dataset of ``{"image": [H, W, C], "guidance": [H, W, G]}`` in [0, 1]."""
    image_files, guidance_files = ([os.fspath(path) for path in files] for files in zip(*pairs))

    def load(image_path, guidance_path, image_in_python, guidance_in_python):
        image = read_image(image_path, image_channels, image_in_python)
        guidance = read_image(guidance_path, guidance_channels, guidance_in_python)
        tf.debugging.assert_equal(
            tf.shape(image)[:2], tf.shape(guidance)[:2],
            message="image and guidance of a pair differ in size",
        )
        return {"image": image, "guidance": guidance}

    return (
        tf.data.Dataset.from_tensor_slices((image_files, guidance_files,
                                            [decoded_in_python(path) for path in image_files],
                                            [decoded_in_python(path) for path in guidance_files]))
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .cache()
    )


def thumbnail(image, size=24):
    """A zero-mean, unit-norm ``size``×``size`` gray thumbnail: a content fingerprint
    that survives rescaling, small crops and exposure changes."""
    image = np.asarray(image, np.float32)
    if image.ndim == 3:
        image = image.mean(axis=-1)
    small = tf.image.resize(image[None, :, :, None], (size, size), antialias=True)
    small = np.asarray(small).ravel()
    small = small - small.mean()
    return small / max(float(np.linalg.norm(small)), 1e-8)


def find_overlaps(train_pairs, test_pairs, threshold=0.95):
    """``[(train_pair, test_pair, score)]`` for training pairs whose content matches a
    test pair, whatever the resolution and also after a flip or 90° rotation. The score
    is the lower thumbnail correlation of the two modalities: on the depth-SR sets true
    matches score >= 0.98 in both, other scenes < 0.8 in RGB (depth maps alone are too
    smooth to tell scenes apart)."""
    from deepam_tf.image_io import read_image_file

    def views(path):
        image = np.asarray(read_image_file(path), np.float32)
        return [thumbnail(v) for v in (image, image[:, ::-1], np.rot90(image), np.rot90(image, 3))]

    tests = [(pair, [thumbnail(np.asarray(read_image_file(p), np.float32)) for p in pair])
             for pair in test_pairs]
    overlaps = []
    for train in train_pairs:
        train_views = [views(p) for p in train]  # [modality][view]
        for pair, prints in tests:
            score = max(
                min(float(train_views[m][v] @ prints[m]) for m in range(len(prints)))
                for v in range(4)
            )
            if score >= threshold:
                overlaps.append((train, pair, score))
    return overlaps
