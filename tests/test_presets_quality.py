"""Shipped presets must keep their quality: PSNR on skimage's camera at σ=25 stays above
the floor recorded (from the measured value) when the preset was shipped."""

import numpy as np
import pytest
import skimage.data

from deepam_tf import denoise, list_presets, metrics

DENOISERS = [n for n, meta in list_presets().items() if meta.get("task") == "denoise"]


@pytest.mark.parametrize("name", DENOISERS)
def test_shipped_denoiser_keeps_its_quality(name):
    meta = list_presets()[name]
    clean = skimage.data.camera().astype(np.float32) / 255.0
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape).astype(np.float32)
    psnr = metrics.psnr(clean, denoise(noisy, 25, model=name))
    assert psnr >= meta["camera_sigma25_floor"], (name, psnr)
