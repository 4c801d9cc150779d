import logging

import numpy as np
import pytest
import skimage.data

from deepam_tf import DeepAM, denoise, evaluate, list_presets, load_preset


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A small noise-conditioned DeepAM saved as .keras (untrained: identity)."""
    path = tmp_path_factory.mktemp("model") / "small.keras"
    DeepAM(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2, noise_level_input=True).save(path)
    return str(path)


@pytest.mark.parametrize(
    "image",
    [
        skimage.data.camera()[:30, :41],
        skimage.data.camera()[:30, :41].astype(np.uint16) * 257,
        skimage.data.camera()[:30, :41] / 255.0,
        (skimage.data.camera()[:30, :41] / 255.0).astype(np.float32) + 0.05,
        skimage.data.astronaut()[:20, :24],
    ],
    ids=["uint8", "uint16", "float64", "float32_out_of_range", "rgb"],
)
def test_denoise_keeps_layout_dtype_and_range(model_path, image):
    out = denoise(image, 25, model=model_path)
    assert out.shape == image.shape and out.dtype == image.dtype
    if image.dtype.kind == "f":
        assert out.min() >= 0 and out.max() <= 1
        # The untrained model is the identity: the result is the input, clipped.
        np.testing.assert_allclose(out, np.clip(image, 0, 1), atol=1e-3)
    else:
        np.testing.assert_allclose(out.astype(float), image.astype(float), atol=np.iinfo(image.dtype).max * 1e-3)


def test_sigma_none_is_estimated_and_reported(model_path, caplog):
    clean = skimage.data.camera()[:128, :128] / 255.0
    noisy = clean + np.random.default_rng(0).normal(0, 20 / 255, clean.shape)
    with caplog.at_level(logging.INFO, logger="deepam_tf"):
        denoise(noisy, None, model=model_path)
    message = [r.getMessage() for r in caplog.records if r.name == "deepam_tf"][-1]
    estimate = float(message.split()[2])
    assert 15 < estimate < 25


@pytest.mark.parametrize(
    "image, sigma, match",
    [
        (np.full((8, 8), np.nan), 25, "NaN"),
        (np.zeros((1, 8)), 25, "at least 2x2"),
        (np.zeros((8, 8), np.int32), 25, "uint8, uint16 or float"),
        (np.zeros((2, 8, 8, 1)), 25, r"\[H, W\] or \[H, W, C\]"),
        (np.zeros((0, 8)), 25, "empty"),
        (np.zeros((8, 8)), 0, "sigma"),
        (np.zeros((8, 8)), 1e6, "sigma"),
        (np.zeros((8, 8)), float("nan"), "sigma"),
    ],
)
def test_bad_input_is_a_clear_error(model_path, image, sigma, match):
    with pytest.raises(ValueError, match=match):
        denoise(image, sigma, model=model_path)


def test_presets_index_and_unknown_name():
    for name, meta in list_presets().items():
        assert "file" in meta and "psnr" in meta
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        load_preset("nope")
    with pytest.raises(ValueError, match="unknown preset"):
        DeepAM.from_preset("nope")


def test_from_preset_loads_a_keras_file(model_path):
    assert isinstance(DeepAM.from_preset(model_path), DeepAM)


def test_evaluate_follows_the_protocol(tmp_path):
    import imageio.v3 as iio

    for i in range(2):
        iio.imwrite(tmp_path / f"{i}.png", skimage.data.camera()[i * 64 : i * 64 + 48, :40])
    rows = evaluate.evaluate(lambda noisy, sigma: noisy, str(tmp_path), 25, seed=3)
    assert [r["image"] for r in rows] == ["0.png", "1.png", "mean"]
    # Identity restoration: PSNR is the clipped noisy PSNR, about 20.2 dB at sigma 25.
    assert rows[0]["psnr"] == pytest.approx(rows[0]["noisy_psnr"])
    assert 19.5 < rows[-1]["psnr"] < 21.5
    again = evaluate.evaluate(lambda noisy, sigma: noisy, str(tmp_path), 25, seed=3)
    assert again[0]["psnr"] == rows[0]["psnr"]  # fixed seed per image
    evaluate.write_tables(rows, str(tmp_path / "table"), "identity")
    assert "Protocol" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "table.csv").read_text().count("\n") == 4
