"""Classical baselines the joint-task benchmarks compare against (numpy).

Upsampling uses the sample grid of :func:`deepam_tf.data.degradations.downsample_nearest`
(LR pixel i sits on HR pixel ``scale * i``), the same grid DeepAM's input is made on.
"""

import numpy as np

from deepam_tf.data.degradations import upsample_bilinear


def bilinear_upsample(image, scale, size=None):
    """``[h, w]`` or ``[h, w, C]`` -> bilinear ``×scale`` (or to ``size``), float32."""
    image = np.asarray(image, np.float32)
    flat = image.ndim == 2
    out = np.asarray(upsample_bilinear(image[..., None] if flat else image, scale, size))
    return out[..., 0] if flat else out


def _cubic_weights(t, a=-0.5):
    """Keys' cubic convolution weights of the 4 taps at offsets -1, 0, 1, 2."""
    def kernel(x):
        x = np.abs(x)
        return np.where(
            x <= 1, (a + 2) * x**3 - (a + 3) * x**2 + 1,
            np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0),
        )

    return np.stack([kernel(t + 1), kernel(t), kernel(1 - t), kernel(2 - t)], axis=-1)


def _cubic_axis(image, axis, scale, length):
    n = image.shape[axis]
    position = np.arange(length, dtype=np.float64) / scale
    base = np.floor(position).astype(int)
    weights = _cubic_weights(position - base)  # [length, 4]
    out = 0.0
    for tap in range(4):
        index = np.clip(base + tap - 1, 0, n - 1)
        shape = [1] * image.ndim
        shape[axis] = length
        out = out + np.take(image, index, axis=axis) * weights[:, tap].reshape(shape)
    return out


def bicubic_upsample(image, scale, size=None):
    """Bicubic (Keys, a = -0.5) ``×scale`` upsampling of ``[h, w]`` or ``[h, w, C]``."""
    image = np.asarray(image, np.float64)
    height, width = size or (image.shape[0] * scale, image.shape[1] * scale)
    out = _cubic_axis(_cubic_axis(image, 0, scale, height), 1, scale, width)
    return out.astype(np.float32)


def box_mean(image, radius):
    """Mean over the ``(2r+1)²`` window, clipped at the borders (summed-area table)."""
    image = np.asarray(image, np.float64)
    padded = np.pad(np.cumsum(np.cumsum(image, 0), 1), ((1, 0), (1, 0)) + ((0, 0),) * (image.ndim - 2))
    h, w = image.shape[:2]
    y0 = np.clip(np.arange(h) - radius, 0, h)
    y1 = np.clip(np.arange(h) + radius + 1, 0, h)
    x0 = np.clip(np.arange(w) - radius, 0, w)
    x1 = np.clip(np.arange(w) + radius + 1, 0, w)
    total = (padded[y1][:, x1] - padded[y0][:, x1] - padded[y1][:, x0] + padded[y0][:, x0])
    count = ((y1 - y0)[:, None] * (x1 - x0)[None, :]).reshape((h, w) + (1,) * (image.ndim - 2))
    return total / count


def guided_filter(guide, source, radius, eps):
    """He, Sun, Tang's guided filter (ECCV 2010) with a gray guide: ``source`` filtered
    to follow the edges of ``guide`` (both ``[H, W]``; ``source`` may be ``[H, W, C]``)."""
    guide = np.asarray(guide, np.float64)
    source = np.asarray(source, np.float64)
    g = guide if source.ndim == 2 else guide[..., None]
    mean_g, mean_s = box_mean(g, radius), box_mean(source, radius)
    cov = box_mean(g * source, radius) - mean_g * mean_s
    var = box_mean(g * g, radius) - mean_g * mean_g
    a = cov / (var + eps)
    b = mean_s - a * mean_g
    return (box_mean(a, radius) * g + box_mean(b, radius)).astype(np.float32)
