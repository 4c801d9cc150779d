"""Shipped presets must keep their quality: PSNR on skimage's camera at σ=25 stays above
the floor recorded (from the measured value) when the preset was shipped."""

import numpy as np
import pytest
import skimage.data

from deepam_tf import denoise, list_presets, metrics

DENOISERS = [n for n, meta in list_presets().items()
             if meta.get("task") == "denoise" and "alias_of" not in meta]
ALIASES = [n for n, meta in list_presets().items() if "alias_of" in meta]


@pytest.mark.parametrize("name", DENOISERS)
def test_shipped_denoiser_keeps_its_quality(name):
    meta = list_presets()[name]
    clean = skimage.data.camera().astype(np.float32) / 255.0
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape).astype(np.float32)
    psnr = metrics.psnr(clean, denoise(noisy, 25, model=name))
    assert psnr >= meta["camera_sigma25_floor"], (name, psnr)


@pytest.mark.parametrize("name", ALIASES)
def test_fixed_sigma_alias_uses_its_sigma(name):
    meta = list_presets()[name]
    clean = skimage.data.camera()[:64, :64].astype(np.float32) / 255.0
    noisy = clean + np.random.default_rng(1).normal(0, meta["sigma"] / 255, clean.shape).astype(np.float32)
    np.testing.assert_array_equal(denoise(noisy, model=name), denoise(noisy, meta["sigma"], model=meta["alias_of"]))
