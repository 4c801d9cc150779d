import logging
import os

import numpy as np
import pytest
import skimage.data

from deepam_tf import DeepAM, denoise, evaluation, list_presets, load_preset, restore_with_nir



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


def test_a_sigma_given_on_the_unit_scale_is_warned_about(model_path, nir_model_path, caplog):
    # scikit-image's denoisers take sigma on the image's scale: 20 / 255 for a float image.
    clean = skimage.data.camera()[:128, :128] / 255.0
    noisy = clean + np.random.default_rng(0).normal(0, 20 / 255, clean.shape)
    with caplog.at_level(logging.WARNING, logger="deepam_tf"):
        denoise(noisy, 20 / 255, model=model_path)
        denoise(clean, 0.5, model=model_path)  # a clean image told a small σ: no warning
        denoise(noisy, 2, model=model_path)  # at or above 1: taken as meant
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "sigma 0.0784314 is on the 0-255 scale" in warnings[0] and warnings[0].endswith("pass 20")
    caplog.clear()
    rgb = np.dstack([noisy] * 3)
    with caplog.at_level(logging.WARNING, logger="deepam_tf"):
        restore_with_nir(rgb, clean, 20 / 255, model=nir_model_path)
    assert any("is on the 0-255 scale" in r.getMessage() for r in caplog.records)


def test_an_8_bit_image_in_a_uint16_array_is_warned_about(model_path, caplog):
    camera = skimage.data.camera()[:64, :64]
    with caplog.at_level(logging.WARNING, logger="deepam_tf"):
        out = denoise(camera.astype(np.uint16), 25, model=model_path)
        denoise(camera.astype(np.uint16) * 257, 25, model=model_path)  # a real 16-bit image
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["image is uint16 with values at most 210, nearly black on the 16-bit scale: "
                        "an 8-bit image in a 16-bit array? Pass it as uint8 (.astype(np.uint8))"]
    assert out.dtype == np.uint16  # still done as asked


def test_a_noise_free_constant_image_or_channel_estimates_no_noise(model_path):
    from deepam_tf.restore import MIN_ESTIMATED_SIGMA, chroma_noise_ratio, estimate_sigma

    constant = np.zeros((64, 64), np.uint8)  # a black frame: skimage's estimate is NaN
    assert estimate_sigma(constant) == MIN_ESTIMATED_SIGMA
    np.testing.assert_array_equal(denoise(constant, None, model=model_path), constant)
    noisy = np.clip(skimage.data.camera()[:64, :64] / 255.0
                    + np.random.default_rng(0).normal(0, 20 / 255, (64, 64)), 0, 1)
    one_constant = np.dstack([noisy, noisy, np.zeros((64, 64))])
    assert estimate_sigma(one_constant) == pytest.approx(estimate_sigma(noisy) * 2 / 3, rel=1e-6)
    # A noisy gray image stored as RGB: its chroma is 0 (to round-off), no independent noise.
    assert chroma_noise_ratio(np.dstack([noisy] * 3)) < 1e-6


@pytest.mark.parametrize(
    "image, sigma, match",
    [
        (np.full((8, 8), np.nan), 25, "NaN"),
        (np.zeros((1, 8)), 25, "at least 2x2"),
        (np.zeros((1, 5), np.uint8), None, "at least 2x2"),  # checked before σ is estimated
        (np.zeros((8, 8), np.int32), 25, "uint8, uint16 or float"),
        (np.zeros((2, 8, 8, 1)), 25, r"\[H, W\] or \[H, W, C\]"),
        (np.zeros((3, 16, 16), np.uint8), 25, r"channels-first.*moveaxis"),  # a CHW array
        (np.zeros((1, 16, 16)), None, "channels-first"),
        (np.zeros((0, 8)), 25, "empty"),
        (np.zeros((8, 8)), 0, "sigma"),
        (np.zeros((8, 8)), 1e6, "sigma"),
        (np.zeros((8, 8)), float("nan"), "sigma"),
        (np.zeros((8, 8)), "25", "sigma must be a number"),
        (np.zeros((8, 8)), True, "sigma must be a number"),
        (np.zeros((8, 8)), np.array([25.0]), "sigma must be a number"),
        (np.zeros((8, 8)), np.array(300), "sigma must be a number"),
    ],
)
def test_bad_input_is_a_clear_error(model_path, image, sigma, match):
    with pytest.raises(ValueError, match=match):
        denoise(image, sigma, model=model_path)


def test_sigma_may_be_any_real_scalar(model_path):
    import tensorflow as tf

    image = skimage.data.camera()[:16, :16]
    want = denoise(image, 25, model=model_path)
    for sigma in (25.0, np.float32(25), np.int64(25), np.array(25.0), tf.constant(25.0)):
        np.testing.assert_array_equal(denoise(image, sigma, model=model_path), want)


def test_presets_index_and_unknown_name():
    for name, meta in list_presets().items():
        assert "file" in meta and ("psnr" in meta or "bmp" in meta), name  # measured quality
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        load_preset("nope")
    with pytest.raises(ValueError, match="unknown preset"):
        DeepAM.from_preset("nope")


def test_preset_file_is_the_file_a_name_loads(model_path):
    from deepam_tf.models.presets import PRESET_DIR, preset_file

    for name, meta in list_presets().items():  # aliases name their target's file
        assert preset_file(name) == os.path.join(PRESET_DIR, meta["file"]) and os.path.isfile(preset_file(name))
    assert preset_file(model_path) == model_path
    with pytest.raises(ValueError, match="model file .*missing.keras does not exist"):
        preset_file(os.path.join(os.path.dirname(model_path), "missing.keras"))


def test_from_preset_loads_a_keras_file(model_path):
    assert isinstance(DeepAM.from_preset(model_path), DeepAM)


def test_evaluate_can_show_progress_with_the_running_mean(tmp_path, capsys):
    import imageio.v3 as iio

    for i in range(2):
        iio.imwrite(tmp_path / f"{i}.png", skimage.data.camera()[:32, i * 40: i * 40 + 40])
    evaluation.evaluate_restorer(lambda noisy, sigma: noisy, str(tmp_path), 25)
    assert "mean PSNR" not in capsys.readouterr().out
    rows = evaluation.evaluate_restorer(lambda noisy, sigma: noisy, str(tmp_path), 25, progress=True)
    shown = capsys.readouterr().out
    assert "2/2" in shown and f"mean PSNR: {rows[-1]['psnr']:.4f}" in shown
    # Not a terminal (capsys): one plain line, no escapes or carriage returns for a log.
    assert "\x1b[" not in shown and "\r" not in shown and shown.count("\n") == 1


def test_evaluate_follows_the_protocol(tmp_path):
    import imageio.v3 as iio

    for i in range(2):
        iio.imwrite(tmp_path / f"{i}.png", skimage.data.camera()[i * 64 : i * 64 + 48, :40])
    rows = evaluation.evaluate_restorer(lambda noisy, sigma: noisy, str(tmp_path), 25, seed=3)
    assert [r["image"] for r in rows] == ["0.png", "1.png", "mean"]
    # Identity restoration: PSNR is the clipped noisy PSNR, about 20.2 dB at sigma 25.
    assert rows[0]["psnr"] == pytest.approx(rows[0]["noisy_psnr"])
    assert 19.5 < rows[-1]["psnr"] < 21.5
    again = evaluation.evaluate_restorer(lambda noisy, sigma: noisy, str(tmp_path), 25, seed=3)
    assert again[0]["psnr"] == rows[0]["psnr"]  # fixed seed per image
    evaluation.write_tables(rows, str(tmp_path / "table"), "identity")
    assert "Protocol" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "table.csv").read_text().count("\n") == 4


@pytest.fixture(scope="module")
def depth_model_path(tmp_path_factory):
    """A small untrained depth-SR DeepAM (identity on its bilinear input)."""
    path = tmp_path_factory.mktemp("model") / "depth.keras"
    DeepAM(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2, guidance_channels=3).save(path)
    return str(path)


@pytest.fixture(scope="module")
def nir_model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "nir.keras"
    DeepAM(stages=1, channels=3, guidance_channels=1, noise_level_input=True, features=8, depth=4,
           gamma_layer=3, fusion_layer=2).save(path)
    return str(path)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_upsample_depth_keeps_dtype_range_and_samples(depth_model_path, dtype):
    from deepam_tf import upsample_depth

    rng = np.random.default_rng(0)
    depth = rng.integers(30, 220, (12, 10)).astype(dtype)
    if dtype == np.float32:
        depth = depth / 40.0  # metres, say
    rgb = skimage.data.astronaut()[:48, :40]
    high = upsample_depth(depth, rgb, 4, model=depth_model_path)
    assert high.shape == (48, 40) and high.dtype == depth.dtype
    # The untrained model returns its bilinear input: samples kept, range kept.
    tolerance = 1 if dtype != np.float32 else 1e-3 * depth.max()
    np.testing.assert_allclose(high[::4, ::4].astype(float), depth.astype(float), atol=tolerance)
    assert upsample_depth(depth[..., None], rgb, 4, model=depth_model_path).shape == (48, 40, 1)
    # An RGBA guidance is its colour (the trained preset, which does look at the guidance).
    rgba = np.dstack([rgb, rng.integers(0, 256, rgb.shape[:2]).astype(np.uint8)])
    np.testing.assert_array_equal(upsample_depth(depth, rgba, 4), upsample_depth(depth, rgb, 4))


def test_upsample_depth_fills_holes(depth_model_path):
    from deepam_tf import upsample_depth

    depth = np.full((8, 8), 100, np.uint8)
    depth[3:5, 3:5] = 0
    high = upsample_depth(depth, np.zeros((32, 32, 3), np.uint8), 4, model=depth_model_path)
    assert np.all(np.abs(high.astype(int) - 100) <= 1)


@pytest.mark.parametrize(
    "depth, rgb, scale, match",
    [
        (np.ones((8, 8), np.uint8), np.zeros((30, 32, 3), np.uint8), 4, "times scale 4"),
        (np.ones((8, 8), np.uint8), np.zeros((32, 32, 3), np.uint8), 2.5, "scale"),
        (np.ones((8, 8), np.uint8), np.zeros((32, 32), np.uint8), 4, r"rgb must have shape \[H, W, 3\]"),
        (np.full((8, 8), np.nan, np.float32), np.zeros((32, 32, 3), np.uint8), 4, "NaN"),
        (np.zeros((8, 8), np.uint8), np.zeros((32, 32, 3), np.uint8), 4, "no valid"),
        (np.ones((8, 8, 3), np.uint8), np.zeros((32, 32, 3), np.uint8), 4, "depth_lr must have shape"),
    ],
    ids=["size", "scale", "gray_rgb", "nan", "all_holes", "rgb_as_depth"],
)
def test_upsample_depth_bad_input(depth_model_path, depth, rgb, scale, match):
    from deepam_tf import upsample_depth

    with pytest.raises(ValueError, match=match):
        upsample_depth(depth, rgb, scale, model=depth_model_path)


def test_restore_with_nir_keeps_layout(nir_model_path):
    rgb = skimage.data.astronaut()[:40, :36]
    nir = rgb[..., 0]
    out = restore_with_nir(rgb, nir, 25, model=nir_model_path)
    assert out.shape == rgb.shape and out.dtype == rgb.dtype
    np.testing.assert_allclose(out.astype(float), rgb.astype(float), atol=1)  # untrained: identity
    with pytest.raises(ValueError, match="same height and width"):
        restore_with_nir(rgb, nir[:-1], 25, model=nir_model_path)
    with pytest.raises(ValueError, match=r"nir must have shape \[H, W, 1\]"):
        restore_with_nir(rgb, rgb, 25, model=nir_model_path)
    with pytest.raises(ValueError, match="sigma"):
        restore_with_nir(rgb, nir, -3, model=nir_model_path)
    # RGB plus alpha: the alpha channel comes back as it was.
    alpha = np.random.default_rng(0).integers(0, 256, rgb.shape[:2], dtype=np.uint8)
    out = restore_with_nir(np.dstack([rgb, alpha]), nir, 25, model=nir_model_path)
    np.testing.assert_array_equal(out[..., 3], alpha)
    np.testing.assert_array_equal(out[..., :3], restore_with_nir(rgb, nir, 25, model=nir_model_path))
    with pytest.raises(ValueError, match=r"rgb must have shape \[H, W, 3\] or \[H, W, 4\]"):
        restore_with_nir(np.dstack([nir, alpha]), nir, 25, model=nir_model_path)


@pytest.mark.parametrize("colours", [1, 3], ids=["gray+alpha", "rgb+alpha"])
def test_denoise_keeps_alpha_and_denoises_the_rest_as_an_image(colours):
    # A trained preset, so that denoising changes the alpha channel when it is not kept.
    rng = np.random.default_rng(0)
    clean = skimage.data.astronaut()[100:148, 200:248]
    colour = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    colour = colour if colours == 3 else colour[..., 0]
    alpha = rng.integers(0, 256, clean.shape[:2], dtype=np.uint8)
    image = np.dstack([colour, alpha])
    out = denoise(image, 25, model="denoise_blind")
    assert out.shape == image.shape and out.dtype == image.dtype
    np.testing.assert_array_equal(out[..., -1], alpha)
    # The colour part as its own image: RGB in the opponent channels, as denoise(rgb) does.
    np.testing.assert_array_equal(out[..., :-1].reshape(colour.shape),
                                  denoise(colour, 25, model="denoise_blind"))
    every_channel = denoise(image, 25, model="denoise_blind", alpha=False)
    assert np.abs(every_channel[..., -1].astype(int) - alpha).max() > 10


def test_one_call_api_keeps_a_bounded_number_of_models(tmp_path, model_path):
    import shutil

    from deepam_tf import restore

    paths = []
    for i in range(restore.MAX_LOADED + 2):
        paths.append(str(tmp_path / f"m{i}.keras"))
        shutil.copy(model_path, paths[-1])
    first = restore._load(paths[0])
    assert restore._load(paths[0]) is first  # cached
    for path in paths[1:]:
        restore._load(path)
        restore._load(paths[0])  # recently used: kept
    assert len(restore._LOADED) <= restore.MAX_LOADED
    assert restore._load(paths[0]) is first
    assert all(key[0] != paths[1] for key in restore._LOADED)  # least recently used: dropped


def test_threads_that_ask_for_one_model_at_once_load_it_once(tmp_path, model_path, monkeypatch):
    import shutil
    import threading
    import time

    import deepam_tf.models
    from deepam_tf import restore

    path = str(tmp_path / "fresh.keras")
    shutil.copy(model_path, path)
    real, loads = deepam_tf.models.load_preset, []

    def slow_load(*args):
        loads.append(args)
        time.sleep(0.3)  # a real load takes seconds: long enough for the others to ask
        return real(*args)

    monkeypatch.setattr(deepam_tf.models, "load_preset", slow_load)
    got = [None] * 4
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, restore._load(path))) for i in range(4)]
    [thread.start() for thread in threads]
    [thread.join(30) for thread in threads]
    assert len(loads) == 1 and got[0] is not None and all(model is got[0] for model in got)


def test_threads_load_two_models_at_once(tmp_path, model_path, monkeypatch):
    # The first model's load waits until the second one's has started: with one lock for
    # every load it would wait for good (and fail here after 20 s).
    import shutil
    import threading

    import deepam_tf.models
    from deepam_tf import restore

    paths = [str(tmp_path / f"model{i}.keras") for i in range(2)]
    for path in paths:
        shutil.copy(model_path, path)
    real, waited = deepam_tf.models.load_preset, []
    first_started, second_started = threading.Event(), threading.Event()

    def load(path, *args):
        if path == paths[0]:
            first_started.set()
            waited.append(second_started.wait(20))
        else:
            second_started.set()
        return real(path, *args)

    monkeypatch.setattr(deepam_tf.models, "load_preset", load)
    got = [None, None]
    first = threading.Thread(target=lambda: got.__setitem__(0, restore._load(paths[0])))
    first.start()
    assert first_started.wait(20)
    got[1] = restore._load(paths[1])
    first.join(30)
    assert waited == [True]
    assert got[0] is not got[1] and all(model is not None for model in got)
    assert restore._load(paths[0]) is got[0] and not restore._LOAD_LOCKS
    with pytest.raises(ValueError):
        restore._load(str(tmp_path / "missing.keras"))
    assert not restore._LOAD_LOCKS  # a failed load leaves no lock behind


def test_denoise_from_several_threads_gives_each_its_own_result():
    import threading

    rng = np.random.default_rng(0)
    images = [np.clip(skimage.data.camera()[i * 40:i * 40 + 40, :48] + rng.normal(0, 25, (40, 48)), 0, 255)
              .astype(np.uint8) for i in range(4)]
    want = [denoise(image, 25, model="denoise_blind") for image in images]
    got, errors = [None] * 8, []

    def work(i):
        try:
            got[i] = denoise(images[i % 4], 25, model="denoise_blind", tile_size=None if i < 4 else 16)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    [thread.start() for thread in threads]
    [thread.join(120) for thread in threads]
    assert not errors
    for i, result in enumerate(got):
        np.testing.assert_allclose(result.astype(int), want[i % 4].astype(int), atol=1)


def test_a_model_for_another_task_is_refused_naming_it(model_path, depth_model_path, nir_model_path):
    from deepam_tf import upsample_depth

    with pytest.raises(ValueError, match=r"depth\.keras takes 1 image and 3 guidance.*denoising needs 1 and 0"):
        denoise(np.zeros((8, 8)), 25, model=depth_model_path)
    with pytest.raises(ValueError, match=r"small\.keras takes 1 image and 0 guidance.*depth super-resolution"):
        upsample_depth(np.ones((4, 4), np.uint8), np.zeros((16, 16, 3), np.uint8), 4, model=model_path)
    with pytest.raises(ValueError, match=r"depth\.keras takes .*RGB/NIR restoration needs 3 and 1"):
        restore_with_nir(np.zeros((8, 8, 3)), np.zeros((8, 8)), 25, model=depth_model_path)
    import keras

    other = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(1, 3, padding="same")])
    with pytest.raises(ValueError, match="is a Sequential, not a deepam_tf DeepAM"):
        denoise(np.zeros((8, 8)), 25, model=other)


def test_evaluate_checks_every_file_before_any_work(tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "0.png", skimage.data.camera()[:32, :40])
    (tmp_path / "1.png").write_bytes(b"")
    calls = []
    with pytest.raises(ValueError, match="1.png: empty file"):
        evaluation.evaluate_restorer(lambda noisy, sigma: calls.append(1) or noisy, str(tmp_path), 25)
    assert not calls


def test_an_unknown_set_or_no_data_folder_says_what_there_is(tmp_path, model_path, monkeypatch):
    (tmp_path / "data" / "denoise" / "set12").mkdir(parents=True)
    (tmp_path / "data" / "denoise" / "bsd68").mkdir()
    with pytest.raises(ValueError, match=r"no set 'bsd86' in .*denoise \(there: bsd68, set12\); or give an image folder"):
        evaluation.evaluate(model_path, "bsd86", 25, data_dir=str(tmp_path / "data"))
    monkeypatch.delenv("DEEPAM_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no ../shared/data from here
    with pytest.raises(ValueError, match=r"no data folder: pass one \(--data-dir, data_dir=\), set DEEPAM_DATA"):
        evaluation.evaluate(model_path, "bsd68", 25)


def test_one_call_evaluate_on_a_folder_or_a_named_set_writes_tables_once(tmp_path, model_path):
    import imageio.v3 as iio

    import deepam_tf

    folder = tmp_path / "data" / "denoise" / "tiny"
    folder.mkdir(parents=True)
    for i in range(2):
        iio.imwrite(folder / f"{i}.png", skimage.data.camera()[:32, i * 40: i * 40 + 40])
    by_folder = deepam_tf.evaluate(model_path, folder, 25, output=tmp_path / "t")  # paths or str
    # The untrained model is the identity: PSNR is the noisy PSNR, image by image.
    assert by_folder[0]["psnr"] == pytest.approx(by_folder[0]["noisy_psnr"], abs=0.01)
    by_name = deepam_tf.evaluate(load_preset(model_path), "tiny", 25, data_dir=str(tmp_path / "data"))
    assert [r["psnr"] for r in by_name] == [r["psnr"] for r in by_folder]
    table = (tmp_path / "t.md").read_bytes()
    with pytest.raises(FileExistsError, match="t.csv exists"):
        deepam_tf.evaluate(model_path, str(folder), 50, output=str(tmp_path / "t"))
    assert (tmp_path / "t.md").read_bytes() == table
    deepam_tf.evaluate(model_path, str(folder), 50, output=str(tmp_path / "t"), overwrite=True)
    assert "sigma 50" in (tmp_path / "t.md").read_text()
    with pytest.raises(ValueError, match="sigma must be a number"):
        deepam_tf.evaluate(model_path, str(folder), 0)


def test_evaluate_in_colour_keeps_rgb_and_refuses_gray_files(tmp_path, model_path):
    import imageio.v3 as iio

    import deepam_tf

    folder = tmp_path / "rgb"
    folder.mkdir()
    for i in range(2):
        iio.imwrite(folder / f"{i}.png", skimage.data.astronaut()[:24, i * 30: i * 30 + 30])
    rows = deepam_tf.evaluate(model_path, folder, 25, colour=True, output=tmp_path / "t")
    # The untrained model is the identity in the opponent space too: noisy PSNR, in colour.
    assert rows[0]["psnr"] == pytest.approx(rows[0]["noisy_psnr"], abs=0.02)
    gray = deepam_tf.evaluate(model_path, folder, 25)
    assert gray[0]["noisy_psnr"] != pytest.approx(rows[0]["noisy_psnr"], abs=0.01)  # other pixels
    assert "(RGB)" in (tmp_path / "t.md").read_text()
    iio.imwrite(folder / "2.png", skimage.data.camera()[:24, :30])
    with pytest.raises(ValueError, match="2.png is a gray image"):
        deepam_tf.evaluate(model_path, folder, 25, colour=True)


def test_bfloat16_precision_converts_once_and_keeps_the_stored_model(model_path, caplog, monkeypatch):
    from deepam_tf import hardware, restore

    noisy = skimage.data.camera()[:24, :30]
    stored = restore._load(model_path)
    half = restore.load_for_task(model_path, "denoising", "bfloat16")
    assert half is restore.load_for_task(model_path, "denoising", "bfloat16")  # cached
    assert stored.policy.name == "float32" and half.policy.name == "mixed_bfloat16"
    for a, b in zip(stored.weights, half.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(denoise(noisy, 25, model=model_path, precision="bfloat16"),
                               denoise(noisy, 25, model=model_path), atol=3)
    monkeypatch.setattr(hardware, "native_bfloat16", lambda: False)
    restore._warn_if_bfloat16_emulated.cache_clear()
    caplog.clear()  # on a machine without bfloat16 instructions the calls above warned already
    with caplog.at_level(logging.WARNING, logger="deepam_tf"):
        denoise(noisy, 25, model=model_path, precision="bfloat16")
        denoise(noisy, 25, model=model_path, precision="bfloat16")
    assert sum("emulated" in r.getMessage() for r in caplog.records) == 1  # once per process
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16"):
        denoise(noisy, 25, model=model_path, precision="float16")


def test_a_loaded_model_in_bfloat16_is_converted_once_and_follows_its_weights(model_path):
    from deepam_tf import restore

    model = load_preset(model_path)
    half = restore.load_for_task(model, "denoising", "bfloat16")
    assert half is not model and half.policy.name == "mixed_bfloat16"
    assert restore.load_for_task(model, "denoising", "bfloat16") is half
    assert restore.load_for_task(model, "denoising", "float32") is model
    model.weights[0].assign(model.weights[0] + 1.0)  # e.g. trained in between
    again = restore.load_for_task(model, "denoising", "bfloat16")
    np.testing.assert_array_equal(again.weights[0].numpy(), model.weights[0].numpy())


def test_a_scale_without_a_shipped_depth_model_names_the_shipped_ones():
    from deepam_tf import upsample_depth

    with pytest.raises(ValueError, match=r"no shipped depth model for x3 \(shipped: x4, x8, x16\)"):
        upsample_depth(np.ones((8, 8), np.uint8), np.zeros((24, 24, 3), np.uint8), 3)


def test_narrow_images_raise_no_warning_from_the_noise_estimate(model_path):
    import warnings

    from deepam_tf.restore import chroma_noise_ratio, estimate_sigma

    rng = np.random.default_rng(0)
    narrow, tiny_rgb = rng.random((50, 3)), rng.random((2, 2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert estimate_sigma(narrow) > 0 and np.isfinite(chroma_noise_ratio(tiny_rgb))
        denoise(narrow, None, model=model_path)


def test_a_sigma_above_the_trained_range_is_logged_once(caplog):
    from deepam_tf import restore

    restore.warn_outside_training_range.cache_clear()
    gray = skimage.data.camera()[:32, :32]
    rgb = skimage.data.astronaut()[:32, :32]

    def warnings_of(*args, **kwargs):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="deepam_tf"):
            denoise(*args, **kwargs)
        return [r.getMessage() for r in caplog.records if "trained on" in r.getMessage()]

    assert warnings_of(gray, 55, model="denoise_blind") == []  # denoise_blind: sigma_range [0, 55]
    assert warnings_of(gray, 90, model="denoise_blind") == [
        "sigma 90 is above the noise levels denoise_blind was trained on (0-55): its quality falls "
        "off past them (README, Noise above the trained range)"]
    assert warnings_of(gray, 90, model="denoise_blind") == []  # once
    assert warnings_of(gray, 90) == []  # "auto": denoise_high_sigma, trained to 110
    assert warnings_of(gray, 150)[0].startswith(
        "sigma 150 is above the noise levels denoise_high_sigma was trained on (50-110)")
    # RGB goes through the opponent channels, whose noise is at most σ/√2.
    assert warnings_of(rgb, 70, colour_space="opponent", model="denoise_blind") == []
    assert warnings_of(rgb, 90, colour_space="opponent", model="denoise_blind")[0].startswith(
        "sigma 90 (63.64 in the noisiest opponent channel) is above the noise levels denoise_blind")
    assert warnings_of(rgb, 90, colour_space="opponent") == []
    assert warnings_of(rgb, 200, colour_space="opponent")[0].startswith(
        "sigma 200 (141.4 in the noisiest opponent channel) is above the noise levels denoise_high_sigma")


def test_auto_takes_the_high_sigma_preset_above_the_blind_presets_range(caplog):
    from deepam_tf.restore import blind_preset_for, denoiser_for

    assert [blind_preset_for(s) for s in (5, 55, 55.5, 90, 110, 200)] == (
        ["denoise_blind"] * 2 + ["denoise_high_sigma"] * 4)
    assert [denoiser_for(s) for s in (25, 30, 90)] == ["denoise_sigma25", "denoise_blind", "denoise_high_sigma"]
    from deepam_tf.restore import specialist_presets

    assert specialist_presets() == [(15, "denoise_sigma15"), (25, "denoise_sigma25"), (50, "denoise_sigma50")]
    assert [denoiser_for(s) for s, _ in specialist_presets()] == [name for _, name in specialist_presets()]
    rng = np.random.default_rng(0)
    gray = skimage.data.camera()[200:248, 200:248] / 255.0 + rng.normal(0, 90 / 255, (48, 48))
    np.testing.assert_array_equal(denoise(gray, 90), denoise(gray, 90, model="denoise_high_sigma"))
    # An estimated σ and the opponent channels of RGB take the blind preset for their level.
    with caplog.at_level(logging.INFO, logger="deepam_tf"):
        denoise(gray)
        rgb = skimage.data.astronaut()[:48, :48] / 255.0 + rng.normal(0, 100 / 255, (48, 48, 3))
        np.testing.assert_array_equal(denoise(rgb, 100, colour_space="opponent"),
                                      denoise(rgb, 100, colour_space="opponent", model="denoise_high_sigma"))
    assert "model denoise_high_sigma for the estimated sigma" in caplog.text
    assert "model denoise_high_sigma for the opponent channels" in caplog.text


@pytest.mark.parametrize("task", ["denoise", "rgb_nir"])
def test_blind_routes_are_blind_preset_for_as_bands(task):
    # What a routed SavedModel (deepam export auto) serves: each σ by the preset of its band.
    from deepam_tf.restore import MAX_SIGMA, blind_preset_for, blind_routes

    routes = blind_routes(task)
    tops = [top for top, _ in routes]
    assert tops == sorted(tops) and tops[-1] == MAX_SIGMA and len(routes) >= 2
    for sigma in np.concatenate([np.arange(0.25, MAX_SIGMA + 0.01, 0.25), tops]):
        band = next(name for top, name in routes if sigma <= top)
        assert band == blind_preset_for(sigma, task), sigma


def test_restore_with_nir_takes_its_high_sigma_preset_above_the_blind_ones_range(caplog):
    from deepam_tf.restore import blind_preset_for

    assert [blind_preset_for(s, "rgb_nir") for s in (25, 55, 56, 100, 300)] == (
        ["rgbnir_blind"] * 2 + ["rgbnir_high_sigma"] * 3)
    rng = np.random.default_rng(0)
    clean = skimage.data.astronaut()[:48, :48] / 255.0
    rgb, nir = clean + rng.normal(0, 90 / 255, clean.shape), clean.mean(-1)
    high = restore_with_nir(rgb, nir, 90, model="rgbnir_high_sigma")
    np.testing.assert_array_equal(restore_with_nir(rgb, nir, 90), high)
    assert np.abs(restore_with_nir(rgb, nir, 90, model="rgbnir_blind") - high).max() > 0.01
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="deepam_tf"):
        restore_with_nir(rgb, nir)  # σ estimated: the preset for the estimate
    assert "model rgbnir_high_sigma for sigma" in caplog.text and "trained on" not in caplog.text


def test_float_images_with_heavy_noise_are_accepted_when_sigma_allows(model_path):
    clean = skimage.data.camera()[:64, :64] / 255.0
    noisy = clean + np.random.default_rng(0).normal(0, 150 / 255, clean.shape)
    assert noisy.max() > 2.5  # outside the default range of accepted floats
    assert denoise(noisy, 150, model=model_path).shape == clean.shape
    with pytest.raises(ValueError, match="float images must be on the"):
        denoise(noisy * 255, 150, model=model_path)  # 0-255 floats are still refused


def test_the_noise_estimate_leaves_alpha_out():
    from deepam_tf.restore import estimate_sigma

    rng = np.random.default_rng(0)
    rgb = np.clip(skimage.data.astronaut()[:64, :64] + rng.normal(0, 20, (64, 64, 3)), 0, 255).astype(np.uint8)
    alpha = np.full((64, 64), 255, np.uint8)  # no noise: it would pull the mean down by a quarter
    assert estimate_sigma(np.dstack([rgb, alpha])) == estimate_sigma(rgb)
    assert estimate_sigma(np.dstack([rgb[..., 0], alpha])) == estimate_sigma(rgb[..., 0])
    assert 15 < estimate_sigma(rgb) < 25


def test_a_depth_preset_given_another_scale_says_so(caplog):
    from deepam_tf import upsample_depth

    depth = np.random.default_rng(0).integers(30, 220, (8, 8)).astype(np.uint8)
    rgb = skimage.data.astronaut()[:64, :64]
    with caplog.at_level(logging.WARNING, logger="deepam_tf"):
        upsample_depth(depth, rgb, 8)
        upsample_depth(depth[:4, :4], rgb[:64, :64], 16, model="depth_x16")
        assert not caplog.records
        upsample_depth(depth, rgb, 8, model="depth_x4")
        upsample_depth(depth[:4, :4], rgb[:64, :64], 16, model="depth_x8")
    assert [r.getMessage() for r in caplog.records] == [
        "depth_x4 was trained for x4 and x8 was given; depth_x8 is trained for x8",
        "depth_x8 was trained for x8 and x16 was given; depth_x16 is trained for x16"]
