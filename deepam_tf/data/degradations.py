"""Degradations applied on the fly to clean training/evaluation samples.

A degradation maps a clean sample ``{"image": [H, W, C], ...}`` (float32 in [0, 1]) and a
stateless seed ``[2]`` to ``(inputs, target)`` in the layout a :class:`DeepAM` expects.
"""

import tensorflow as tf


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
        if sigma is not None and not 0 < sigma <= 255:
            raise ValueError(f"sigma must be in (0, 255], got {sigma}")
        if sigma_range is not None and not 0 <= sigma_range[0] <= sigma_range[1] <= 255:
            raise ValueError(f"sigma_range must satisfy 0 <= low <= high <= 255, got {sigma_range}")
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
        if self.noise_level_input:
            return {"image": noisy, "noise_level": tf.reshape(sigma, [1])}, clean
        return noisy, clean
