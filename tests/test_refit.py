import logging

import imageio.v3 as iio
import keras
import numpy as np
import pytest
import skimage.data

from deepam_tf import DeepAM, cli, refit
from deepam_tf.refit import head_inputs, head_model, negative_psnr, read_images, refit_head

SMALL = dict(stages=2, features=8, depth=4, gamma_layer=2, fusion_layer=1)


def _randomised(model, seed=0):
    """Every weight random (the last layers start at zero), batch-norm statistics too."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        scale = 0.3 if "variance" not in weight.path else 1.0
        value = rng.normal(0, scale, weight.shape)
        weight.assign(np.abs(value) + 0.5 if "variance" in weight.path else value)
    return model


def _inputs(model, images, sigma=25, guidance=None):
    named = {"image": images}
    if model.noise_level_input:
        named["noise_level"] = np.full((len(images), 1), sigma / 255, np.float32)
    if guidance is not None:
        named["guidance"] = guidance
    return named if len(named) > 1 else images


@pytest.mark.parametrize("first_layer", [None, 2])
@pytest.mark.parametrize("options", [dict(noise_level_input=True), dict(),
                                     dict(stages=1, noise_level_input=True),
                                     dict(guidance_channels=3)])
def test_the_head_on_cached_inputs_gives_the_model_output(options, first_layer):
    model = _randomised(DeepAM(**{**SMALL, **options}))
    rng = np.random.default_rng(1)
    images = rng.random((3, 20, 24, 1)).astype(np.float32)
    guidance = rng.random((3, 20, 24, 3)).astype(np.float32) if model.guidance_channels else None
    inputs = _inputs(model, images, guidance=guidance)
    want = model.predict(inputs, verbose=0)
    cached = head_inputs(model, inputs, first_layer)
    assert cached["features"].shape[-1] == 8 + 8 * (model.guidance_channels > 0 and first_layer == 2)
    head = head_model(model, first_layer)
    got = head.predict(cached, verbose=0)
    assert np.std(want - images) > 1e-2  # the randomised model is far from the identity
    np.testing.assert_allclose(got, want, atol=1e-5)
    # as fit runs it: batch norm keeps its statistics though these models train theirs
    np.testing.assert_allclose(head(cached, training=True), want, atol=1e-5)


def test_refit_lowers_the_error_and_changes_only_the_head():
    keras.utils.set_random_seed(0)
    model = DeepAM(**SMALL, noise_level_input=True, freeze_batch_norm=True)
    clean = np.stack([skimage.data.camera()[i * 24: i * 24 + 24, 100:132] for i in range(8)])
    clean = (clean[..., None] / 255.0).astype(np.float32)
    before = {w.path: w.numpy() for w in model.weights}
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape).astype(np.float32)
    error = lambda: np.mean((model.predict(_inputs(model, noisy), verbose=0) - clean) ** 2)  # noqa: E731
    start = error()
    history = refit_head(model, clean, 25, epochs=20, batch_size=4, learning_rate=3e-3, verbose=0)
    after = error()
    assert after < 0.85 * start
    # The fit saw this noise draw, and its last epoch's loss is the model's error on it.
    assert history.history["loss"][-1] == pytest.approx(after, rel=0.02)
    head = {w.path for w in head_model(model).weights}
    assert head == {"stage2_aggregation/conv3/kernel", "stage2_aggregation/bn3/gamma",
                    "stage2_aggregation/bn3/beta", "stage2_aggregation/bn3/moving_mean",
                    "stage2_aggregation/bn3/moving_variance", "stage2_aggregation/conv4/kernel",
                    "stage2_aggregation/conv4/bias", "stage2_gamma/conv/kernel",
                    "stage2_gamma/conv/bias"}
    changed = {w.path for w in model.weights if not np.array_equal(w.numpy(), before[w.path])}
    assert changed == {"stage2_aggregation/conv3/kernel", "stage2_aggregation/conv4/kernel",
                       "stage2_aggregation/conv4/bias", "stage2_gamma/conv/kernel",
                       "stage2_gamma/conv/bias"}  # frozen batch norm: neither scale nor statistics


def test_the_psnr_loss_is_minus_each_images_psnr_and_a_refit_raises_the_mean_psnr():
    rng = np.random.default_rng(0)
    clean = rng.random((3, 8, 8, 1)).astype(np.float32)
    restored = clean + rng.normal(0, [[[[0.01]]], [[[0.1]]], [[[0.3]]]], clean.shape).astype(np.float32)
    want = [-10 * np.log10(np.mean((r - c) ** 2)) for c, r in zip(clean, restored)]
    np.testing.assert_allclose(-keras.ops.convert_to_numpy(negative_psnr(clean, restored)), want,
                               rtol=1e-5)

    keras.utils.set_random_seed(0)
    model = DeepAM(**SMALL, noise_level_input=True, freeze_batch_norm=True)
    clean = np.stack([skimage.data.camera()[i * 24: i * 24 + 24, 100:132] for i in range(8)])
    clean = (clean[..., None] / 255.0).astype(np.float32)
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape).astype(np.float32)

    def mean_psnr():
        restored = model.predict(_inputs(model, noisy), verbose=0)
        return np.mean([-10 * np.log10(np.mean((r - c) ** 2)) for c, r in zip(clean, restored)])

    start = mean_psnr()
    history = refit_head(model, clean, 25, loss="psnr", epochs=20, batch_size=4,
                         learning_rate=3e-3, verbose=0)
    after = mean_psnr()
    assert after > start + 0.5
    assert -history.history["loss"][-1] == pytest.approx(after, abs=0.05)
    with pytest.raises(ValueError, match=r"loss must be one of \['mse', 'psnr'\], got 'l1'"):
        refit_head(model, clean, 25, loss="l1", batch_size=4)


def test_a_refit_on_several_noise_draws_fits_them_all():
    keras.utils.set_random_seed(0)
    model = DeepAM(**SMALL, noise_level_input=True, freeze_batch_norm=True)
    clean = np.stack([skimage.data.camera()[i * 24: i * 24 + 24, 100:132] for i in range(4)])
    clean = (clean[..., None] / 255.0).astype(np.float32)
    history = refit_head(model, clean, 25, draws=2, epochs=20, batch_size=4, learning_rate=3e-3,
                         verbose=0)
    rng = np.random.default_rng(0)  # the draws, in turn
    errors = [np.mean((model.predict(_inputs(model, clean + rng.normal(0, 25 / 255, clean.shape)
                                              .astype(np.float32)), verbose=0) - clean) ** 2)
              for _ in range(3)]
    assert history.history["loss"][-1] == pytest.approx(np.mean(errors[:2]), rel=0.02)
    assert errors[2] > 1.02 * np.mean(errors[:2])  # a draw the fit did not see


def test_a_refit_over_a_sigma_range_gives_each_image_its_own_level(monkeypatch):
    keras.utils.set_random_seed(0)
    model = DeepAM(**SMALL, noise_level_input=True, freeze_batch_norm=True)
    clean = np.stack([skimage.data.camera()[i * 24: i * 24 + 24, 100:132] for i in range(4)])
    clean = (clean[..., None] / 255.0).astype(np.float32)
    cached = []
    monkeypatch.setattr(refit, "head_inputs", lambda *args: cached.append(args[1]) or head_inputs(*args))
    history = refit_head(model, clean, (5, 50), draws=2, epochs=20, batch_size=4,
                         learning_rate=3e-3, verbose=0)
    rng = np.random.default_rng(0)  # every level, then each draw's noise
    levels = rng.uniform(5, 50, 2 * len(clean)).reshape(2, -1, 1, 1, 1)
    noisy = np.concatenate([clean + rng.normal(0, level / 255, clean.shape).astype(np.float32)
                            for level in levels])
    np.testing.assert_array_equal(cached[0]["image"], noisy)
    np.testing.assert_allclose(cached[0]["noise_level"], levels.reshape(-1, 1) / 255, rtol=1e-6)
    assert np.ptp(levels) > 20
    error = np.mean((model.predict(cached[0], verbose=0) - np.concatenate([clean] * 2)) ** 2)
    assert history.history["loss"][-1] == pytest.approx(error, rel=0.02)


def test_the_psnr_loss_over_levels_near_zero_warns(caplog):
    model = DeepAM(**SMALL, noise_level_input=True, freeze_batch_norm=True)
    clean = np.full((4, 16, 16, 1), 0.5, np.float32)
    for low, warned in ((0, True), (5, False)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="deepam_tf"):
            refit_head(model, clean, (low, 30), loss="psnr", epochs=1, batch_size=4, verbose=0)
        assert any("levels below 1" in r.getMessage() for r in caplog.records) == warned


def test_a_deeper_refit_changes_the_layers_from_first_layer_on():
    keras.utils.set_random_seed(0)
    model = DeepAM(**SMALL, freeze_batch_norm=True)
    clean = np.stack([skimage.data.camera()[i * 24: i * 24 + 24, 100:132] for i in range(4)])
    clean = (clean[..., None] / 255.0).astype(np.float32)
    before = {w.path: w.numpy() for w in model.weights}
    refit_head(model, clean, 25, first_layer=2, epochs=2, batch_size=2, verbose=0)
    changed = {w.path for w in model.weights if not np.array_equal(w.numpy(), before[w.path])}
    assert changed == {"stage2_aggregation/conv2/kernel", "stage2_aggregation/conv3/kernel",
                       "stage2_aggregation/conv4/kernel", "stage2_aggregation/conv4/bias",
                       "stage2_gamma/conv/kernel", "stage2_gamma/conv/bias"}


def test_a_refit_of_a_model_that_trains_batch_norm_keeps_its_statistics():
    keras.utils.set_random_seed(0)
    model = _randomised(DeepAM(**SMALL))
    clean = np.stack([skimage.data.camera()[i * 24: i * 24 + 24, 100:132] for i in range(4)])
    clean = (clean[..., None] / 255.0).astype(np.float32)
    before = {w.path: w.numpy() for w in model.weights}
    refit_head(model, clean, 25, first_layer=2, epochs=2, batch_size=2, verbose=0)
    changed = {w.path for w in model.weights if not np.array_equal(w.numpy(), before[w.path])}
    assert not any("moving" in path for path in changed)
    assert {"stage2_aggregation/bn2/gamma", "stage2_aggregation/bn3/beta"} <= changed
    assert not any(path.startswith(("stage1", "stage2_aggregation/bn1", "stage2_aggregation/conv1"))
                   for path in changed)


def test_refit_refuses_what_it_cannot_fit(tmp_path):
    model = DeepAM(**SMALL, noise_level_input=True)
    with pytest.raises(ValueError, match=r"clean must have shape \[N, H, W, 1\]"):
        refit_head(model, np.zeros((4, 16, 16, 3)), 25)
    with pytest.raises(ValueError, match="need at least batch_size=16 images, got 4"):
        refit_head(model, np.zeros((4, 16, 16, 1)), 25)
    for first_layer in (1, 4):
        with pytest.raises(ValueError, match=rf"first_layer must be in \[2, gamma_layer \+ 1 = 3\], "
                                             rf"got {first_layer}"):
            head_model(model, first_layer)
    with pytest.raises(ValueError, match=r"fusion \(after layer 2\) lies inside the head"):
        head_model(DeepAM(**{**SMALL, "fusion_layer": 2}, guidance_channels=3), 2)
    with pytest.raises(ValueError, match="no images to cache"):
        head_inputs(model, {"image": np.zeros((0, 16, 16, 1)), "noise_level": np.zeros((0, 1))})
    with pytest.raises(ValueError, match="draws must be >= 1, got 0"):
        refit_head(model, np.zeros((16, 16, 16, 1)), 25, draws=0)
    # A negative or NaN rate ran and wrote a model fitted uphill, or with NaN weights.
    for rate in (-1e-3, 0, float("nan"), "3e-4"):
        with pytest.raises(ValueError, match=f"learning_rate must be a positive number, got {rate!r}"):
            refit_head(model, np.zeros((16, 16, 16, 1)), 25, learning_rate=rate)
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        refit_head(model, np.zeros((16, 16, 16, 1)), 25, epochs=0)
    for bounds in ((30, 20), (5, 300)):
        with pytest.raises(ValueError, match=rf"with 0 <= low < high <= 255, got \({bounds[0]:.1f}, "
                                             rf"{bounds[1]:.1f}\)"):
            refit_head(model, np.zeros((16, 16, 16, 1)), bounds)
    with pytest.raises(ValueError, match="a sigma range needs a noise-level-conditioned model"):
        refit_head(DeepAM(**SMALL), np.zeros((16, 16, 16, 1)), (0, 55))
    for sigma in (0, np.nan, 300):
        with pytest.raises(ValueError, match=rf"sigma must be a number in \(0, 255\] on the 0-255 "
                                             rf"scale, got {sigma}"):
            refit_head(model, np.zeros((16, 16, 16, 1)), sigma)
    with pytest.raises(ValueError, match="takes a guidance image"):
        refit_head(DeepAM(**SMALL, guidance_channels=3), np.zeros((16, 16, 16, 1)), 25)
    iio.imwrite(tmp_path / "a.png", np.zeros((16, 16), np.uint8))
    iio.imwrite(tmp_path / "b.png", np.zeros((16, 20), np.uint8))
    with pytest.raises(ValueError, match="must share one size; found 2 sizes"):
        read_images([tmp_path / "a.png", tmp_path / "b.png"])
    (tmp_path / "c.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="c.png: not a readable image"):
        read_images([tmp_path / "a.png", tmp_path / "c.png"])


def test_refit_head_command_writes_a_new_model_and_keeps_the_old(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    source = tmp_path / "m.keras"
    DeepAM(**SMALL, noise_level_input=True, freeze_batch_norm=True).save(source)
    original = source.read_bytes()
    (tmp_path / "set").mkdir()
    for i in range(4):
        iio.imwrite(tmp_path / "set" / f"{i}.png", skimage.data.camera()[:24, i * 30: i * 30 + 30])
    out = tmp_path / "refit.keras"
    run = ["refit-head", str(source), "--first-layer", "2", "--sigma", "25",
           "--images", str(tmp_path / "set"),
           "-o", str(out), "--epochs", "1", "--batch-size", "2", "--verbose", "0"]
    assert cli.main(run) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    refitted = keras.models.load_model(out)
    assert refitted.freeze_batch_norm
    for kernel in ("stage2_aggregation/conv2/kernel", "stage2_aggregation/conv4/kernel"):
        assert not np.array_equal(*(next(w.numpy() for w in m.weights if w.path == kernel)
                                    for m in (refitted, keras.models.load_model(source))))
    assert source.read_bytes() == original
    written = out.read_bytes()
    assert cli.main(run) == 1 and "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == written
    assert cli.main(run[:-6] + ["-o", str(tmp_path / "x.h5")]) == 1
    assert "must be a .keras file" in capsys.readouterr().err
    ranged = [str(source), "--sigma-range", "5", "50", "--images", str(tmp_path / "set"),
              "-o", str(tmp_path / "r.keras")] + run[-6:]
    assert cli.main(["refit-head"] + ranged) == 0
    assert "at sigma 5 to 50 on 4 images" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["refit-head", "--sigma", "25"] + ranged)
    assert "argument --sigma-range: not allowed with argument --sigma" in capsys.readouterr().err
    for rate in ("-1", "nan"):
        with pytest.raises(SystemExit):
            cli.main(["refit-head"] + ranged + ["--learning-rate", rate])
        assert f"learning rate must be a positive number, got {rate}" in capsys.readouterr().err
    joint = tmp_path / "joint.keras"
    DeepAM(**SMALL, guidance_channels=3).save(joint)
    assert cli.main(["refit-head", str(joint)] + run[2:-6] + ["-o", str(tmp_path / "j.keras")]) == 1
    streams = capsys.readouterr()
    assert "takes a guidance image; refit_head fits denoisers" in streams.err
    assert "refitting" not in streams.out  # refused before it announces any work
