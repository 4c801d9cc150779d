"""Shipped presets must keep their quality: PSNR on skimage's camera at σ=25 (a fixed-σ
denoiser: at its σ; the high-σ one: at the σ of its floor) stays above the floor recorded
(from the measured value) when the preset was shipped."""

import logging

import numpy as np
import pytest
import skimage.data

from deepam_tf import baselines, data, denoise, list_presets, metrics, restore_with_nir, upsample_depth
from deepam_tf.models.presets import CAMERA_CROPS, camera_floor

DENOISERS = [n for n, meta in list_presets().items()
             if meta.get("task") == "denoise" and "alias_of" not in meta]
FIXED_SIGMA = [n for n, meta in list_presets().items() if meta.get("task") == "denoise" and "sigma" in meta]
ALIASES = [n for n, meta in list_presets().items() if "alias_of" in meta]
NIR_ALIASES = [n for n in ALIASES if list_presets()[n].get("task") == "rgb_nir"]


@pytest.mark.parametrize("name", DENOISERS)
def test_shipped_denoiser_keeps_its_quality(name):
    meta = list_presets()[name]
    sigma, floor = camera_floor(meta)
    assert sigma == meta.get("sigma", sigma)
    clean = skimage.data.camera().astype(np.float32) / 255.0
    noisy = clean + np.random.default_rng(0).normal(0, sigma / 255, clean.shape).astype(np.float32)
    psnr = metrics.psnr(clean, denoise(noisy, sigma, model=name))
    assert psnr >= floor, (name, psnr)
    # The index records the value the floor was set from; it must be what the preset gives.
    assert abs(psnr - meta[f"camera_sigma{sigma}_psnr"]) < 5e-3, (name, psnr)


@pytest.mark.parametrize("name", DENOISERS)
@pytest.mark.parametrize("crop", list(CAMERA_CROPS.values()), ids=list(CAMERA_CROPS))
def test_shipped_denoiser_in_bfloat16_keeps_its_psnr(name, crop):
    # Measured on Set12 and BSD68: mean PSNR unchanged to 0.001 dB, per image to 0.003 dB.
    # While the networks read the image rounded to bfloat16, these crops moved by
    # 0.11-0.29/255 RMS and the nearly flat sky (45-48 dB) lost up to 0.43 dB; read in
    # float32: 0.01-0.06/255 and at most 0.02 dB (TensorFlow's kernels instead of oneDNN's,
    # TF_ENABLE_ONEDNN_OPTS=0: up to 0.07/255 and 0.03 dB).
    sigma = camera_floor(list_presets()[name])[0]
    clean = skimage.data.camera()[crop].astype(np.float32) / 255.0
    noisy = clean + np.random.default_rng(0).normal(0, sigma / 255, clean.shape).astype(np.float32)
    full = denoise(noisy, sigma, model=name)
    half = denoise(noisy, sigma, model=name, precision="bfloat16")
    psnr = (metrics.psnr(clean, full), metrics.psnr(clean, half))
    assert abs(psnr[1] - psnr[0]) < 0.05, psnr
    rms = np.sqrt(np.mean((half - full) ** 2)) * 255
    assert rms < 0.1, rms


@pytest.mark.parametrize("name", FIXED_SIGMA)
def test_fixed_sigma_denoiser_uses_its_sigma(name):
    meta = list_presets()[name]
    clean = skimage.data.camera()[:64, :64].astype(np.float32) / 255.0
    noisy = clean + np.random.default_rng(1).normal(0, meta["sigma"] / 255, clean.shape).astype(np.float32)
    told = denoise(noisy, meta["sigma"], model=meta.get("alias_of", name))
    np.testing.assert_array_equal(denoise(noisy, model=name), told)


@pytest.mark.parametrize("name", ALIASES)
def test_alias_metadata_is_its_targets_at_its_sigma(name):
    # An alias's published numbers must be re-read from its target after a retrain.
    meta = list_presets()[name]
    target = list_presets()[meta["alias_of"]]
    assert meta["file"] == target["file"]
    sigma = str(meta["sigma"])
    for metric in ("psnr", "ssim"):
        for dataset, values in meta.get(metric, {}).items():
            assert values == {sigma: target[metric][dataset][sigma]}, (name, metric, dataset)


DEPTH = [n for n, meta in list_presets().items() if meta.get("task") == "depth_sr"]
RGB_NIR = [n for n, meta in list_presets().items()
           if meta.get("task") == "rgb_nir" and "alias_of" not in meta]


@pytest.mark.parametrize("name", DEPTH)
def test_shipped_depth_model_beats_bilinear(name):
    # Floor: the BMP (δ=3) on the synthetic scene must stay under the recorded ceiling,
    # which was set from the measured value and is well under bilinear's.
    meta = list_presets()[name]
    scale = meta["scale"]
    depth, rgb = data.depth_scene(256, seed=0)
    low = depth[::scale, ::scale]
    truth = depth.astype(np.float32)
    deepam = metrics.bad_matching_percentage(truth, upsample_depth(low, rgb, scale, model=name), 3.0)
    bilinear = metrics.bad_matching_percentage(truth, baselines.bilinear_upsample(low, scale), 3.0)
    assert deepam <= meta["scene_bmp_ceiling"] < bilinear, (name, deepam, bilinear)


@pytest.mark.parametrize("name, sigma", [(name, int(sigma)) for name in RGB_NIR
                                         for sigma in list_presets()[name]["astronaut_gain_floor"]])
def test_shipped_rgb_nir_model_restores_noisy_rgb(name, sigma):
    # skimage's astronaut with its own luminance as a stand-in NIR image, at each σ the
    # preset has a floor for.
    meta = list_presets()[name]
    clean = skimage.data.astronaut()[100:228, 150:278].astype(np.float32) / 255.0
    nir = clean @ np.float32([0.299, 0.587, 0.114])
    noisy = clean + np.random.default_rng(2).normal(0, sigma / 255, clean.shape).astype(np.float32)
    gain = metrics.psnr(clean, np.clip(restore_with_nir(noisy, nir, sigma, model=name), 0, 1)) - \
        metrics.psnr(clean, np.clip(noisy, 0, 1))
    assert gain >= meta["astronaut_gain_floor"][str(sigma)], (name, sigma, gain)


@pytest.mark.parametrize("name", NIR_ALIASES)
def test_fixed_sigma_rgb_nir_alias_uses_its_sigma(name):
    meta = list_presets()[name]
    clean = skimage.data.astronaut()[:48, :40].astype(np.float32) / 255.0
    nir = clean.mean(-1)
    noisy = clean + np.random.default_rng(3).normal(0, meta["sigma"] / 255, clean.shape).astype(np.float32)
    np.testing.assert_array_equal(
        restore_with_nir(noisy, nir, model=name),
        restore_with_nir(noisy, nir, meta["sigma"], model=meta["alias_of"]),
    )


def test_colour_images_are_denoised_better_in_the_opponent_space():
    # Measured on this 256² crop of skimage's astronaut at σ=25 (seed 0): R, G, B one by
    # one 30.39 dB, opponent channels 31.85 dB (benchmarks/colour.py has the real-image
    # table).
    clean = skimage.data.astronaut()[128:384, 128:384].astype(np.float32) / 255.0
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape).astype(np.float32)
    rgb = metrics.psnr(clean, denoise(noisy, 25, colour_space="rgb"))
    opponent = metrics.psnr(clean, denoise(noisy, 25))
    assert opponent > rgb + 0.5, (opponent, rgb)


SPECIALISED = [n for n in FIXED_SIGMA if "specialised_from" in list_presets()[n]]


@pytest.mark.parametrize("name", SPECIALISED)
def test_a_specialised_denoiser_given_another_sigma_says_so(name, caplog):
    meta = list_presets()[name]
    noisy = skimage.data.camera()[:32, :32]
    ours = lambda: [r.getMessage() for r in caplog.records if r.name == "deepam_tf"]
    with caplog.at_level(logging.WARNING, logger="deepam_tf"):
        denoise(noisy, meta["sigma"], model=name)
        # Another σ inside the blind model's training range (σ ≤ 55), where it says nothing.
        denoise(noisy, meta["sigma"] + 5, model=meta["specialised_from"])
        assert not ours()
        denoise(noisy, meta["sigma"] + 5, model=name)
    [message] = ours()
    assert f"trained for sigma {meta['sigma']:g} only" in message
    assert meta["specialised_from"] in message


@pytest.mark.parametrize("name", SPECIALISED)
def test_auto_takes_the_specialist_of_the_sigma_given_else_the_blind_model(name, caplog):
    meta = list_presets()[name]
    sigma, blind = meta["sigma"], meta["specialised_from"]
    clean = skimage.data.astronaut()[:48, :40].astype(np.float32) / 255.0
    noisy = clean + np.random.default_rng(4).normal(0, sigma / 255, clean.shape).astype(np.float32)
    gray = noisy[..., 1]
    with caplog.at_level(logging.INFO, logger="deepam_tf"):
        ours = denoise(gray, sigma)
    assert f"model {name} for sigma {sigma:g}" in caplog.text
    np.testing.assert_array_equal(ours, denoise(gray, sigma, model=name))
    assert np.any(ours != denoise(gray, sigma, model=blind))
    np.testing.assert_array_equal(denoise(gray, sigma + 1), denoise(gray, sigma + 1, model=blind))
    # R, G and B one by one are each at σ; the opponent channels are not.
    np.testing.assert_array_equal(denoise(noisy, sigma, colour_space="rgb"),
                                  denoise(noisy, sigma, model=name, colour_space="rgb"))
    np.testing.assert_array_equal(denoise(noisy, sigma, colour_space="opponent"),
                                  denoise(noisy, sigma, model=blind, colour_space="opponent"))


def test_evaluate_under_auto_runs_what_denoise_under_auto_runs(tmp_path, capsys):
    import imageio.v3 as iio

    from deepam_tf import cli, evaluate

    name = SPECIALISED[0]
    sigma, blind = list_presets()[name]["sigma"], list_presets()[name]["specialised_from"]
    for kind, image in (("gray", skimage.data.camera()), ("rgb", skimage.data.astronaut())):
        (tmp_path / kind).mkdir()
        iio.imwrite(tmp_path / kind / "0.png", image[100:132, 100:140])
    psnrs = lambda rows: [row["psnr"] for row in rows]  # noqa: E731
    auto = evaluate("auto", tmp_path / "gray", sigma)
    assert psnrs(auto) == psnrs(evaluate(name, tmp_path / "gray", sigma))
    assert psnrs(auto) != psnrs(evaluate(blind, tmp_path / "gray", sigma))
    assert psnrs(evaluate("auto", tmp_path / "gray", sigma + 1)) == psnrs(
        evaluate(blind, tmp_path / "gray", sigma + 1))
    # In colour the protocol's noise is independent across R, G, B: opponent channels, blind.
    assert psnrs(evaluate("auto", tmp_path / "rgb", sigma, colour=True)) == psnrs(
        evaluate(blind, tmp_path / "rgb", sigma, colour=True))
    assert cli.main(["evaluate", "--folder", str(tmp_path / "gray"), "--sigma", f"{sigma:g}",
                     "-o", str(tmp_path / "table")]) == 0
    assert f"\n{name} at sigma {sigma:g}: mean PSNR" in capsys.readouterr().out
    assert f"{name} on " in (tmp_path / "table.md").read_text()
