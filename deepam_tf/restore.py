"""One-call restoration on numpy images: dtype, range and layout in, the same out."""

import logging

import numpy as np

logger = logging.getLogger("deepam_tf")

DEFAULT_DENOISER = "denoise_blind"
MAX_SIGMA = 255.0


def to_unit_range(image, name="image"):
    """``(float32 array in [0, 1] nominally, restore)`` where ``restore`` maps a result
    back to the input's dtype and range. Accepts uint8, uint16 and floats in [0, 1]."""
    image = np.asarray(image)
    if image.size == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    if image.dtype == np.uint8 or image.dtype == np.uint16:
        scale = float(np.iinfo(image.dtype).max)
        dtype = image.dtype

        def restore(result):
            return np.round(np.clip(result, 0.0, 1.0) * scale).astype(dtype)

        return image.astype(np.float32) / scale, restore
    if image.dtype.kind == "f":
        if not np.all(np.isfinite(image)):
            raise ValueError(f"{name} contains NaN or Inf")
        dtype = image.dtype

        def restore(result):
            return np.clip(result, 0.0, 1.0).astype(dtype)

        return image.astype(np.float32), restore
    raise ValueError(
        f"{name} must be uint8, uint16 or float in [0, 1], got dtype {image.dtype}"
    )


def _layout(image, name="image"):
    """``[H, W] | [H, W, C]`` -> ``[C, H, W, 1]`` (channels as a batch) and back."""
    if image.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape [H, W] or [H, W, C], got {image.shape}")
    if min(image.shape[:2]) < 2:
        raise ValueError(f"{name} must be at least 2x2 pixels, got {image.shape}")
    if image.ndim == 2:
        return image[None, :, :, None], lambda batch: batch[0, :, :, 0]
    return np.moveaxis(image, -1, 0)[..., None], lambda batch: np.moveaxis(batch[..., 0], 0, -1)


def estimate_sigma(image01):
    """Noise level on the 0–255 scale of an image in [0, 1] (wavelet MAD estimate)."""
    import skimage.restoration

    channel_axis = -1 if image01.ndim == 3 else None
    sigma = skimage.restoration.estimate_sigma(image01, channel_axis=channel_axis, average_sigmas=True)
    return float(sigma) * 255.0


def check_sigma(sigma):
    if not np.isscalar(sigma) or not np.isfinite(sigma) or not 0 < sigma <= MAX_SIGMA:
        raise ValueError(f"sigma must be a number in (0, {MAX_SIGMA:g}] on the 0-255 scale, got {sigma!r}")
    return float(sigma)


def run_denoiser(model, batch, sigma, tile_size="auto"):
    """The model on ``[B, H, W, 1]`` float32 with noise level σ (0–255 scale), tiled
    exactly (see :func:`deepam_tf.models.tiling.tiled_predict`); ``tile_size=None`` runs
    the whole image at once."""
    inputs = np.asarray(batch, np.float32)
    if getattr(model, "noise_level_input", False):
        level = np.full((inputs.shape[0], 1), sigma / 255.0, np.float32)
        inputs = {"image": inputs, "noise_level": level}
    return model.predict(inputs, verbose=0, tile_size=tile_size)


def denoise(image, sigma=None, model=DEFAULT_DENOISER, tile_size="auto"):
    """Removes Gaussian noise of level ``sigma`` with a DeepAM denoiser.

    Args:
        image: numpy array, ``[H, W]`` or ``[H, W, C]``; uint8, uint16, or float nominally
            in [0, 1] (noisy floats slightly outside it are fine). Colour channels are
            denoised one by one with the grayscale model.
        sigma: noise standard deviation on the 0–255 scale whatever the dtype; ``None``
            estimates it (logged on the ``deepam_tf`` logger).
        model: preset name, ``.keras`` path or a loaded :class:`DeepAM`.
        tile_size: CNN tile side in pixels, ``"auto"`` (from the available memory) or
            ``None`` (whole image at once). Tiling is exact: the result does not change.

    Returns:
        The restored image, same shape and dtype, range [0, 1] for floats.
    """
    from deepam_tf.models import load_preset

    unit, back = to_unit_range(image)
    batch, unbatch = _layout(unit)
    if sigma is None:
        sigma = estimate_sigma(unit)
        logger.info("estimated sigma %.2f (0-255 scale)", sigma)
    sigma = check_sigma(sigma)
    if isinstance(model, str):
        model = load_preset(model)
    return back(unbatch(run_denoiser(model, batch, sigma, tile_size)))
