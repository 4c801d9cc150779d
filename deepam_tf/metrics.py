"""Image quality metrics: PSNR and SSIM for restoration, BMP and RMSE for depth."""

import numpy as np
import skimage.metrics


def _pair(reference, estimate):
    """Both images as float64; ValueError unless they have one shape (numpy would
    broadcast ``[H, W]`` against ``[H, W, 1]`` to ``[H, H, W]`` and give a wrong number)."""
    reference = np.asarray(reference, np.float64)
    estimate = np.asarray(estimate, np.float64)
    if reference.shape != estimate.shape:
        raise ValueError(f"reference and estimate must have the same shape, got "
                         f"{reference.shape} and {estimate.shape}")
    if reference.size == 0:
        raise ValueError(f"reference and estimate are empty (shape {reference.shape})")
    return reference, estimate


def psnr(reference, estimate, data_range=1.0):
    """Peak signal-to-noise ratio in dB."""
    reference, estimate = _pair(reference, estimate)
    mse = np.mean((reference - estimate) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def ssim(reference, estimate, data_range=1.0):
    """Structural similarity (scikit-image, Gaussian-free 7×7 windows; channels averaged)."""
    reference, estimate = _pair(reference, estimate)
    channel_axis = -1 if reference.ndim == 3 else None
    return float(
        skimage.metrics.structural_similarity(
            reference, estimate, data_range=data_range, channel_axis=channel_axis
        )
    )


def bad_matching_percentage(reference, estimate, threshold=3.0):
    """BMP: % of pixels whose absolute error exceeds ``threshold`` (depth on [0, 255])."""
    reference, estimate = _pair(reference, estimate)
    return float(100.0 * np.mean(np.abs(reference - estimate) > threshold))


def rmse(reference, estimate):
    """Root-mean-square error."""
    reference, estimate = _pair(reference, estimate)
    return float(np.sqrt(np.mean((reference - estimate) ** 2)))
