"""Image quality metrics: PSNR and SSIM for restoration, BMP and RMSE for depth."""

import numpy as np
import skimage.metrics


def psnr(reference, estimate, data_range=1.0):
    """Peak signal-to-noise ratio in dB."""
    reference = np.asarray(reference, np.float64)
    estimate = np.asarray(estimate, np.float64)
    mse = np.mean((reference - estimate) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def ssim(reference, estimate, data_range=1.0):
    """Structural similarity (scikit-image, Gaussian-free 7×7 windows; channels averaged)."""
    reference = np.asarray(reference, np.float64)
    estimate = np.asarray(estimate, np.float64)
    channel_axis = -1 if reference.ndim == 3 else None
    return float(
        skimage.metrics.structural_similarity(
            reference, estimate, data_range=data_range, channel_axis=channel_axis
        )
    )


def bad_matching_percentage(reference, estimate, threshold=3.0):
    """BMP: % of pixels whose absolute error exceeds ``threshold`` (depth on [0, 255])."""
    error = np.abs(np.asarray(reference, np.float64) - np.asarray(estimate, np.float64))
    return float(100.0 * np.mean(error > threshold))


def rmse(reference, estimate):
    """Root-mean-square error."""
    error = np.asarray(reference, np.float64) - np.asarray(estimate, np.float64)
    return float(np.sqrt(np.mean(error**2)))
