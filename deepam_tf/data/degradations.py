"""Degradations applied on the fly to clean training/evaluation samples.

A degradation maps a clean sample ``{"image": [H, W, C], ...}`` (float32 in [0, 1]; joint
tasks add ``"guidance"``) and a stateless seed ``[2]`` to ``(inputs, target)`` in the layout
a :class:`DeepAM` expects. A degradation may also have ``prepare(sample)``, applied once
to each whole image before patches are cut.
"""

import numpy as np
import tensorflow as tf


def _real(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


class GaussianNoise:
    """Additive white Gaussian noise, not clipped (the denoising protocol).

    Args:
        sigma: fixed noise level on the 0–255 scale, or ``None`` with ``sigma_range``.
        sigma_range: ``(low, high)``, σ drawn uniformly per sample (0–255 scale).
        noise_level_input: also return ``"noise_level"`` (σ/255) for a conditioned model.
    """

    def __init__(self, sigma=None, sigma_range=None, noise_level_input=False):
        if (sigma is None) == (sigma_range is None):
            raise ValueError("give exactly one of sigma and sigma_range")
        if sigma is not None and not (_real(sigma) and 0 < sigma <= 255):
            raise ValueError(f"sigma must be a number in (0, 255], got {sigma!r}")
        if sigma_range is not None and not (
                np.ndim(sigma_range) == 1 and len(sigma_range) == 2 and all(map(_real, sigma_range))
                and 0 <= sigma_range[0] <= sigma_range[1] <= 255):
            raise ValueError(f"sigma_range must be two numbers [low, high] with 0 <= low <= high "
                             f"<= 255, got {sigma_range!r}")
        self.sigma = sigma
        self.sigma_range = sigma_range
        self.noise_level_input = noise_level_input

    def __call__(self, sample, seed):
        clean = sample["image"]
        seeds = tf.random.experimental.stateless_split(seed, 2)
        if self.sigma is not None:
            sigma = tf.constant(self.sigma / 255.0, tf.float32)
        else:
            low, high = (s / 255.0 for s in self.sigma_range)
            sigma = tf.random.stateless_uniform([], seeds[0], low, high)
        noisy = clean + sigma * tf.random.stateless_normal(tf.shape(clean), seeds[1])
        inputs = {"image": noisy}
        if "guidance" in sample:
            inputs["guidance"] = sample["guidance"]
        if self.noise_level_input:
            inputs["noise_level"] = tf.reshape(sigma, [1])
        return (inputs if len(inputs) > 1 else noisy), clean


def downsample_nearest(image, scale):
    """``image[..., ::scale, ::scale, :]``: the top-left pixel of each block (the
    depth-SR protocol's nearest-neighbour downsampling)."""
    return image[..., ::scale, ::scale, :]


def _interpolate_axis(image, axis, scale, length):
    # HR pixel y samples LR position y / scale: LR pixel i sits on HR pixel scale * i,
    # where downsample_nearest took it, so upsampling reproduces the samples exactly.
    n = tf.shape(image)[axis]
    position = tf.range(length, dtype=tf.float32) / float(scale)
    lower = tf.minimum(tf.cast(tf.floor(position), tf.int32), n - 1)
    upper = tf.minimum(lower + 1, n - 1)
    weight = position - tf.cast(lower, tf.float32)
    shape = [1] * image.shape.rank
    shape[axis] = -1
    weight = tf.reshape(tf.where(upper > lower, weight, 0.0), shape)
    low, high = tf.gather(image, lower, axis=axis), tf.gather(image, upper, axis=axis)
    return low + weight * (high - low)


def upsample_bilinear(image, scale, size=None):
    """Bilinear upsampling ``[..., h, w, C] -> [..., H, W, C]`` (``size = (H, W)``,
    default ``(scale h, scale w)``) on the sample grid of :func:`downsample_nearest`;
    beyond the last sample the edge value is kept."""
    image = tf.convert_to_tensor(image, tf.float32)
    rank = image.shape.rank
    if size is None:
        size = (tf.shape(image)[rank - 3] * scale, tf.shape(image)[rank - 2] * scale)
    image = _interpolate_axis(image, rank - 3, scale, size[0])
    return _interpolate_axis(image, rank - 2, scale, size[1])


class DepthDownsampling:
    """Depth super-resolution input: nearest-neighbour ``×scale`` downsampling of the
    whole high-resolution depth, bilinear upsampling back to its grid (paper §4.2).

    ``prepare`` degrades each whole image once (so patches see the same input as a
    full-image evaluation); ``__call__`` then returns ``({"image": upsampled,
    "guidance": rgb}, depth)`` for a patch.

    Args:
        scale: int >= 2, the upsampling factor.
    """

    def __init__(self, scale):
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
            raise ValueError(f"scale must be an integer >= 2, got {scale!r}")
        self.scale = scale

    def prepare(self, sample):
        depth = sample["image"]
        degraded = upsample_bilinear(downsample_nearest(depth, self.scale), self.scale, tf.shape(depth)[:2])
        return dict(sample, degraded=degraded)

    def __call__(self, sample, seed):
        return {"image": sample["degraded"], "guidance": sample["guidance"]}, sample["image"]
