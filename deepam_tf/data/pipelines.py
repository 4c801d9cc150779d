"""tf.data pipelines: image folders -> random patches -> augmentation -> degradation."""

import os

import numpy as np
import tensorflow as tf

from deepam_tf.image_io import (IMAGE_EXTENSIONS, LUMA_WEIGHTS, TIFF_EXTENSIONS, as_unit_float,
                                exif_orientation, read_image_file)


def list_images(folder):
    """Sorted image files (PNG, JPEG, BMP, WebP, TIFF) in ``folder``, hidden ones left out (such
    as the ``._NAME.jpg`` metadata files macOS writes beside each image on other file
    systems); ValueError if none."""
    if not os.path.isdir(folder):
        raise ValueError(f"image folder {folder} " + ("is a file" if os.path.exists(folder) else
                                                       "does not exist"))
    files = sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")
    )
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return files


def decoded_in_python(path):
    """Whether :func:`read_image` decodes the file ``path`` (a ``str``) through
    :func:`deepam_tf.image_io.read_image_file`. That covers a TIFF or WebP, which TensorFlow
    does not decode. It also covers a file with an EXIF orientation other than upright (a
    phone photo): TensorFlow's decoders ignore the orientation, and ``image_io`` applies it,
    as viewers and ``deepam denoise`` do."""
    return path.lower().endswith(TIFF_EXTENSIONS + (".webp",)) or exif_orientation(path) != 1


def _read_through_image_io(path):
    """An image file as :func:`deepam_tf.image_io.read_image_file` reads it (any bit depth,
    EXIF orientation applied), as float32 ``[H, W, C]``, nominally in [0, 1]."""
    image = as_unit_float(read_image_file(np.asarray(path).item().decode(), keep_alpha=True))
    return image if image.ndim == 3 else image[:, :, None]


def _with_channels(image, channels):
    """``[H, W, C]`` as ``[H, W, channels]``. For 1 or 3 channels, gray, gray+alpha, RGB
    and RGBA are taken: alpha dropped, colour to gray by ITU-R 601 luma (as
    :func:`rgb_to_gray`), gray repeated. Any other count must be the image's own."""
    if channels not in (1, 3):
        return tf.ensure_shape(image, [None, None, channels])
    have = tf.shape(image)[-1]
    image = tf.cond(tf.equal(have % 2, 0), lambda: image[..., :-1], lambda: image)
    if channels == 1:
        luma = tf.constant(LUMA_WEIGHTS, tf.float32)
        return tf.cond(tf.equal(tf.shape(image)[-1], 3),
                       lambda: tf.reduce_sum(image * luma, axis=-1, keepdims=True), lambda: image)
    return tf.cond(tf.equal(tf.shape(image)[-1], 1), lambda: tf.tile(image, [1, 1, 3]),
                   lambda: image)


def read_image(path, channels, in_python=None):
    """Reads an 8- or 16-bit PNG, a JPEG, BMP, WebP or TIFF as float32 ``[H, W, channels]``
    in [0, 1], upright as viewers show it, converted as :func:`_with_channels` says.
    ``in_python``: :func:`decoded_in_python` of the file, a bool (or bool tensor) found
    when the file list is made; ``None`` finds it now, for a ``str`` path."""
    if in_python is None:
        in_python = decoded_in_python(os.fspath(path))
    path = tf.convert_to_tensor(path)

    def decode():
        data = tf.io.read_file(path)
        return tf.io.decode_image(data, channels=0, dtype=tf.float32, expand_animations=False)

    def decode_in_python():
        return tf.numpy_function(_read_through_image_io, [path], tf.float32)

    image = tf.cond(tf.convert_to_tensor(in_python), decode_in_python, decode)
    image = _with_channels(tf.ensure_shape(image, [None, None, None]), channels)
    image.set_shape([None, None, channels])
    return image


def read_image_checked(path, channels):
    """:func:`read_image` run now, with a ValueError naming the file when it cannot be read
    (inside ``tf.data`` the decoders' errors name no file)."""
    try:
        return read_image(path, channels)
    except tf.errors.OpError as error:
        raise ValueError(f"{path}: not a readable image ({error.message})") from None


def check_images(files, channels=1):
    """Reads every file once, so a training run stops before its first step, naming a
    file that cannot be read; returns the images' ``(height, width)``."""
    return [tuple(read_image_checked(path, channels).shape[:2]) for path in files]


def image_dataset(files, channels=1):
    """A cached dataset of ``{"image": [H, W, C]}`` samples read from ``files``."""
    files = [os.fspath(path) for path in files]
    in_python = [decoded_in_python(path) for path in files]
    return (
        tf.data.Dataset.from_tensor_slices((files, in_python))
        .map(lambda p, f: {"image": read_image(p, channels, f)}, num_parallel_calls=tf.data.AUTOTUNE)
        .cache()
    )


def tfds_image_dataset(dataset, channels=1):
    """``{"image": float32 [H, W, C]}`` samples from a TFDS dataset with an ``"image"``
    feature (uint8 or uint16), cached."""
    def convert(example):
        image = tf.image.convert_image_dtype(example["image"], tf.float32)
        return {"image": _with_channels(image, channels)}

    return dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE).cache()


def random_patch(sample, patch_size, seed):
    """The same random ``patch_size`` crop of every image in the sample dict."""
    image = sample["image"]
    shape = tf.shape(image)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    top = tf.random.stateless_uniform([], seeds[0], 0, shape[0] - patch_size + 1, tf.int32)
    left = tf.random.stateless_uniform([], seeds[1], 0, shape[1] - patch_size + 1, tf.int32)
    return {k: v[top : top + patch_size, left : left + patch_size] for k, v in sample.items()}


def augment(sample, seed):
    """The same random flip and 90° rotation (8 dihedral transforms) of every image."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    flip = tf.random.stateless_uniform([], seeds[0], 0, 2, tf.int32)
    turns = tf.random.stateless_uniform([], seeds[1], 0, 4, tf.int32)

    def transform(image):
        image = tf.cond(flip > 0, lambda: tf.image.flip_left_right(image), lambda: image)
        return tf.image.rot90(image, turns)

    return {k: transform(v) for k, v in sample.items()}


def check_scales(scales, degradation=None):
    """``scales`` as a tuple of floats in (0, 1], or a ValueError naming the problem; also
    when ``degradation`` has a ``prepare`` step (depth SR), which makes its input once from
    the full-size image, so a resized image would not match it."""
    if (not isinstance(scales, (list, tuple)) or not scales
            or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 0 < s <= 1
                       for s in scales)):
        raise ValueError(f"scales must be a non-empty list of factors in (0, 1], e.g. "
                         f"[1, 0.9, 0.8, 0.7], got {scales!r}")
    if hasattr(degradation, "prepare"):
        raise ValueError("scales cannot be used with a degradation that prepares its input "
                         f"from the full-size image ({type(degradation).__name__})")
    return tuple(float(s) for s in scales)


def rescaled_size(size, scale):
    """``ceil(scale * size)`` in float32, elementwise (int32): the side(s) :func:`rescale`
    gives an image of side(s) ``size``."""
    return tf.cast(tf.math.ceil(tf.cast(size, tf.float32) * scale), tf.int32)


def rescale(image, scale):
    """``[H, W, C]`` resized by ``scale`` (a float or float tensor <= 1) to
    :func:`rescaled_size` ``ceil(scale * H) x ceil(scale * W)``: bicubic with
    antialiasing, as MATLAB's ``imresize`` that DnCNN's patch generation uses at 1, 0.9,
    0.8 and 0.7, clipped to [0, 1]."""
    size = rescaled_size(tf.shape(image)[:2], scale)
    return tf.clip_by_value(tf.image.resize(image, size, method="bicubic", antialias=True), 0.0, 1.0)


def random_rescale(sample, scales, seed):
    """Every image of the sample :func:`rescale`-d by the same factor drawn uniformly
    from ``scales``; a factor of 1 leaves them as they are."""
    index = tf.random.stateless_uniform([], seed, 0, len(scales), tf.int32)
    scale = tf.gather(tf.constant(scales, tf.float32), index)
    return {k: tf.cond(scale < 1.0, lambda v=v: rescale(v, scale), lambda v=v: v)
            for k, v in sample.items()}


def patch_dataset(samples, degradation, *, patch_size=32, batch_size=16, seed=0, augmentation=True,
                  scales=None):
    """Infinite batches of degraded random patches: ``(inputs, clean)``.

    Args:
        samples: dataset of ``{"image": ..., ...}`` dicts (e.g. :func:`image_dataset`).
        degradation: callable ``(sample, seed) -> (inputs, target)``.
        patch_size, batch_size: patch side and batch size.
        seed: the whole stream (image order, crops, augmentation, noise) follows from it.
        augmentation: random flips and 90° rotations.
        scales: ``None``, or factors in (0, 1] (e.g. ``[1, 0.9, 0.8, 0.7]``): each patch is
            cut from its image resized by one of them, drawn uniformly
            (:func:`random_rescale`). Not for a degradation with a ``prepare`` step (depth
            SR), whose degraded input is made once from the full-size image.
    """
    if scales is not None:
        scales = check_scales(scales, degradation)
    if hasattr(degradation, "prepare"):
        samples = samples.map(degradation.prepare, num_parallel_calls=tf.data.AUTOTUNE).cache()
    counter = tf.data.Dataset.counter()
    seeds = counter.map(lambda i: tf.stack([tf.cast(seed, tf.int64), i]))
    images = samples.repeat().shuffle(256, seed=seed)

    def make(sample, s):
        parts = tf.random.experimental.stateless_split(s, 4 if scales else 3)
        if scales:
            sample = random_rescale(sample, scales, parts[3])
        sample = random_patch(sample, patch_size, parts[0])
        if augmentation:
            sample = augment(sample, parts[1])
        return degradation(sample, parts[2])

    return (
        tf.data.Dataset.zip(images, seeds)
        .map(make, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_dataset(files, degradation, channels=1, seed=0):
    """Whole images, each degraded with a fixed per-image seed ``(seed, index)``; batch 1."""
    samples = image_dataset(files, channels)
    indexed = tf.data.Dataset.zip(samples, tf.data.Dataset.range(len(list(files))))
    return indexed.map(
        lambda s, i: degradation(s, tf.stack([tf.cast(seed, tf.int64), i]))
    ).batch(1)
