import os

import numpy as np
import pytest
import skimage.data

from deepam_tf import denoise, metrics
from deepam_tf.export.windows import litert_runner, run_in_windows, window_spans
from deepam_tf.models import load_preset

EXPORTED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "exported")


@pytest.mark.parametrize("window, overlap", [(256, 64), (256, 0), (32, 31), (7, 2), (64, 63)])
def test_kept_spans_tile_the_axis_away_from_the_borders_windows_share(window, overlap):
    for length in list(range(1, 3 * window + 5)) + [1000, 4001]:
        spans = window_spans(length, window, overlap)
        kept = [(keep_from, keep_to) for _, keep_from, keep_to in spans]
        assert kept[0][0] == 0 and kept[-1][1] == length
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(kept, kept[1:] + [(length, length + 1)]))
        for i, (start, keep_from, keep_to) in enumerate(spans):
            assert 0 <= start and start + window <= max(length, window)
            assert start <= keep_from < keep_to <= start + window
            # A border between two windows lies at least overlap // 2 from every pixel kept
            # (the image's own borders are borders of the whole image too).
            if i:
                assert keep_from - start >= overlap // 2
            if i < len(spans) - 1:
                assert start + window - keep_to >= overlap // 2
        # Neighbours start at most window - overlap apart: no more windows than needed.
        starts = [start for start, _, _ in spans]
        assert all(0 < b - a <= window - overlap for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("shape", [(300, 700), (300, 700, 3), (40, 90), (10, 3, 2), (256, 256)])
def test_a_pointwise_map_in_windows_is_that_map(shape):
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    seen = []

    def run(window):
        seen.append(window.shape)
        return window ** 2 + 1

    out = run_in_windows(run, image, (64, 128), overlap=16)
    np.testing.assert_array_equal(out, image ** 2 + 1)
    assert out.shape == image.shape and out.dtype == np.float32
    assert set(seen) == {(64, 128) + shape[2:]}  # always the static size: small images padded


def test_windows_of_the_shipped_denoiser_approach_the_whole_image_as_the_overlap_grows():
    # The reconstruction is a global solve, so windows differ from the whole image near the
    # borders they cut; the overlap keeps those borders away from the pixels kept.
    model = load_preset("denoise_blind")
    clean = skimage.data.camera()[100:196, 60:220].astype(np.float32) / 255
    noisy = clean + np.random.default_rng(1).normal(0, 25 / 255, clean.shape).astype(np.float32)
    level = np.full((1, 1), 25 / 255, np.float32)

    def run(window):
        return model.predict({"image": window[None, :, :, None], "noise_level": level}, verbose=0)[0, :, :, 0]

    whole = run(noisy)
    gaps, psnrs = [], []
    for overlap in (0, 8, 24):
        out = run_in_windows(run, noisy, (48, 64), overlap)
        gaps.append(np.abs(out - whole).max() * 255)
        psnrs.append(metrics.psnr(clean, np.clip(out, 0, 1)))
    assert gaps[0] > gaps[1] > gaps[2], gaps
    assert gaps[0] > 5 and gaps[2] < 2.5, gaps  # /255
    assert abs(psnrs[2] - metrics.psnr(clean, np.clip(whole, 0, 1))) < 0.02


def test_the_released_tflite_model_in_windows_matches_denoise_on_a_larger_image():
    clean = skimage.data.camera()[20:320, 50:450].astype(np.float32) / 255  # 300x400: 2x2 windows
    noisy = clean + np.random.default_rng(2).normal(0, 25 / 255, clean.shape).astype(np.float32)
    run = litert_runner(os.path.join(EXPORTED, "tflite", "denoise_blind_256x256.tflite"), sigma=25)
    out = run_in_windows(run, noisy, (256, 256))
    whole = denoise(noisy, 25, model="denoise_blind")
    # 2.2/255 at most here: in the cameraman's flat coat γ is small and the solve reaches
    # past the 106 pixels between the pixel kept and the window's border.
    assert np.abs(out - whole).max() <= 3 / 255
    assert abs(metrics.psnr(clean, np.clip(out, 0, 1)) - metrics.psnr(clean, whole)) < 0.01


def test_bad_windows_are_refused():
    with pytest.raises(ValueError, match=r"overlap must be in \[0, window = 64\), got 64"):
        run_in_windows(lambda w: w, np.zeros((100, 100)), (64, 64), overlap=64)
    with pytest.raises(ValueError, match="H, W >= 2"):
        run_in_windows(lambda w: w, np.zeros(100), (64, 64))
    with pytest.raises(ValueError, match=r"run returned shape \(32, 32\) for a window of shape \(64, 64\)"):
        run_in_windows(lambda w: w[:32, :32], np.zeros((100, 100)), (64, 64), overlap=16)
    with pytest.raises(ValueError, match="takes a noise level: sigma must be in"):
        litert_runner(os.path.join(EXPORTED, "tflite", "denoise_blind_256x256.tflite"))


def test_the_runner_refuses_inputs_it_would_not_feed():
    from deepam_tf import DeepAM
    from deepam_tf.export import tflite

    small = dict(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2)
    guided = tflite.convert(DeepAM(guidance_channels=3, **small), (16, 16), 2)
    with pytest.raises(ValueError, match="also takes .*guidance.*image \\(and a noise level\\) only"):
        litert_runner(guided)
    plain = tflite.convert(DeepAM(**small), (16, 16), 2)
    with pytest.raises(ValueError, match="takes no noise level"):
        litert_runner(plain, sigma=25)
    image = np.random.default_rng(3).random((20, 40)).astype(np.float32)
    assert run_in_windows(litert_runner(plain), image, (16, 16), overlap=8).shape == (20, 40)
