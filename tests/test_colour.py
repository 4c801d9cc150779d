"""The opponent colour transform: exact inverse, i.i.d. noise at the stated levels, and
its use by ``deepam_tf.denoise``."""

import numpy as np
import pytest
import skimage.data

from deepam_tf import colour, denoise, restore


def test_opponent_transform_is_inverted_exactly_and_maps_rgb_into_the_unit_cube():
    rgb = np.random.default_rng(0).uniform(0, 1, (64, 64, 3))
    np.testing.assert_allclose(colour.from_opponent(colour.to_opponent(rgb)), rgb, atol=1e-6)
    corners = np.array([[r, g, b] for r in (0, 1) for g in (0, 1) for b in (0, 1)], np.float64)
    opponent = colour.to_opponent(corners)
    assert opponent.min() >= -1e-7 and opponent.max() <= 1 + 1e-7


def test_rgb_noise_stays_independent_at_the_stated_level_per_channel():
    noise = np.random.default_rng(1).normal(0, 0.1, (400_000, 3))
    transformed = colour.to_opponent(noise) - colour.OFFSET
    np.testing.assert_allclose(transformed.std(axis=0), 0.1 * colour.NOISE_SCALE, rtol=0.01)
    correlation = np.corrcoef(transformed.T)
    assert np.abs(correlation - np.eye(3)).max() < 0.01
    np.testing.assert_allclose(colour.NOISE_SCALE, [1 / np.sqrt(3), 1 / np.sqrt(2), np.sqrt(6) / 4])



def test_denoise_runs_each_opponent_channel_at_its_noise_level(model_path, monkeypatch):
    image = skimage.data.astronaut()[:24, :32]
    seen = []
    real = restore.run_denoiser
    monkeypatch.setattr(restore, "run_denoiser", lambda m, batch, sigma, *a: seen.append(
        (batch.copy(), np.copy(sigma))) or real(m, batch, sigma, *a))
    out = denoise(image, 30, model=model_path)
    batch, sigma = seen[-1]
    np.testing.assert_allclose(sigma, 30 * colour.NOISE_SCALE)
    np.testing.assert_allclose(np.moveaxis(batch[..., 0], 0, -1), colour.to_opponent(image / 255.0), atol=1e-6)
    # The untrained model is the identity: the transform and its inverse give the input back.
    np.testing.assert_allclose(out.astype(float), image.astype(float), atol=1)
    denoise(image, 30, model=model_path, colour_space="rgb")
    assert np.ndim(seen[-1][1]) == 0 and seen[-1][1] == 30
    # Not three channels: each channel as it is (two channels: gray and alpha, unless
    # alpha=False).
    denoise(np.zeros((8, 8, 2)), 30, model=model_path, alpha=False)
    assert seen[-1][0].shape == (2, 8, 8, 1) and seen[-1][1] == 30
    denoise(np.zeros((8, 8, 2)), 30, model=model_path)
    assert seen[-1][0].shape == (1, 8, 8, 1)
    with pytest.raises(ValueError, match="colour_space must be one of"):
        denoise(image, 30, model=model_path, colour_space="yuv")


def test_auto_takes_the_opponent_channels_for_independent_noise_and_rgb_for_a_noisy_jpeg(model_path, monkeypatch):
    import io

    import imageio.v3 as iio

    clean = skimage.data.astronaut()[100:228, 150:278].astype(float)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    iio.imwrite(buffer, noisy, extension=".jpg", quality=90)
    jpeg = iio.imread(buffer.getvalue())
    assert restore.chroma_noise_ratio(noisy / 255.0) > 0.8
    assert restore.chroma_noise_ratio(jpeg / 255.0) < 0.3
    seen = []
    real = restore.run_denoiser
    monkeypatch.setattr(restore, "run_denoiser", lambda m, batch, sigma, *a: seen.append(np.copy(sigma))
                        or real(m, batch, sigma, *a))
    denoise(noisy, 20, model=model_path)
    np.testing.assert_allclose(seen[-1], 20 * colour.NOISE_SCALE)  # opponent
    denoise(jpeg, 20, model=model_path)
    assert np.ndim(seen[-1]) == 0 and seen[-1] == 20  # R, G, B at σ
