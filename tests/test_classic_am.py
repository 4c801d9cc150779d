import numpy as np
import pytest
import skimage.data

from deepam_tf import classic_am, metrics


def test_tv_am_denoises_camera():
    clean = skimage.data.camera()[128:384, 128:384].astype(np.float32) / 255
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape).astype(np.float32)
    restored = classic_am(noisy).numpy()
    assert restored.shape == clean.shape and restored.dtype == np.float32
    gain = metrics.psnr(clean, restored.clip(0, 1)) - metrics.psnr(clean, noisy.clip(0, 1))
    assert gain > 6.0


def test_continuation_matters():
    # Without continuation (alpha=1, small beta) the splitting stays loose and quality drops.
    clean = skimage.data.camera()[:128, :128].astype(np.float32) / 255
    noisy = clean + np.random.default_rng(1).normal(0, 25 / 255, clean.shape).astype(np.float32)
    with_continuation = metrics.psnr(clean, classic_am(noisy, alpha=2.0).numpy().clip(0, 1))
    without = metrics.psnr(clean, classic_am(noisy, alpha=1.0).numpy().clip(0, 1))
    assert with_continuation > without + 0.5


def test_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        classic_am(np.zeros((8, 8), np.float32), alpha=0.5)
    with pytest.raises(ValueError, match="shape"):
        classic_am(np.zeros((8,), np.float32))
