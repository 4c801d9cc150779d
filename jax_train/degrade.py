"""Numpy copies of the training degradations, for the JAX trainer (no TensorFlow).

``pack.py`` checks them against ``deepam_tf.data`` on every packed image.
"""

import numpy as np


def _interpolate_axis(image, axis, scale, length):
    n = image.shape[axis]
    position = np.arange(length, dtype=np.float32) / np.float32(scale)
    lower = np.minimum(np.floor(position).astype(np.int64), n - 1)
    upper = np.minimum(lower + 1, n - 1)
    weight = np.where(upper > lower, position - lower.astype(np.float32), np.float32(0))
    shape = [1] * image.ndim
    shape[axis] = -1
    weight = weight.reshape(shape)
    low, high = np.take(image, lower, axis=axis), np.take(image, upper, axis=axis)
    return low + weight * (high - low)


def depth_input(depth, scale):
    """Nearest ×scale downsampling, then bilinear upsampling back to depth's [H, W, 1]."""
    depth = np.asarray(depth, np.float32)
    low = depth[::scale, ::scale]
    up = _interpolate_axis(low, 0, scale, depth.shape[0])
    return _interpolate_axis(up, 1, scale, depth.shape[1])
