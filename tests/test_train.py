import csv
import json
import os
import subprocess
import sys

import imageio.v3 as iio
import keras
import numpy as np
import pytest
import skimage.data

from deepam_tf import train


def _config(tmp_path):
    folder = tmp_path / "data" / "train"
    folder.mkdir(parents=True)
    for i in range(4):
        iio.imwrite(folder / f"{i}.png", skimage.data.camera()[i * 64 : i * 64 + 64, :64])
    return {
        "model": {"stages": 1, "features": 8, "depth": 4, "gamma_layer": 3, "fusion_layer": 2,
                  "noise_level_input": True},
        "data": {"train": "train", "patch_size": 16, "batch_size": 4, "sigma_range": [10, 40]},
        "epochs": 2,
        "steps_per_epoch": 3,
        "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "schedule": "step",
                      "decay_epochs": [1], "clipnorm": 1.0},
        "l2": 5e-4,
        "backup_every_steps": 2,
    }


def test_configs_in_repo_build():
    root = os.path.join(os.path.dirname(__file__), "..", "configs")
    for name in sorted(os.listdir(root)):  # every config in the repo passes the checks
        train.load_config(os.path.join(root, name))
    for name in ("paper.json", "fast_cpu.json", "fast_cpu_bf16.json"):
        config = train.load_config(os.path.join(root, name))
        optimizer = train.build_optimizer(config)
        model = train.build_model(config)
        assert model.stages == 3
    fast, bf16 = (train.load_config(os.path.join(root, n)) for n in ("fast_cpu.json", "fast_cpu_bf16.json"))
    assert {**bf16, "description": None, "model": {**bf16["model"], "dtype": None}} == {
        **fast, "description": None, "model": {**fast["model"], "dtype": None}}  # only the dtype differs
    assert train.build_model(bf16).get_layer("stage1_aggregation").compute_dtype == "bfloat16"
    for name, guidance in [("depth_sr_x4.json", 3), ("depth_sr_x8.json", 3),
                           ("depth_sr_x16.json", 3), ("rgb_nir.json", 1)]:
        config = train.load_config(os.path.join(root, name))
        train.build_optimizer(config)
        assert train.build_model(config).guidance_channels == guidance
        assert isinstance(train.degradation_for(config),
                          train.data.DepthDownsampling if guidance == 3 else train.data.GaussianNoise)
    frozen = train.build_model(train.load_config(os.path.join(root, "finetune_sigma50_frozen.json")))
    assert not any(layer.trainable for layer in frozen.batch_norm_layers())
    paper = train.load_config(os.path.join(root, "paper.json"))
    assert paper["epochs"] * paper["steps_per_epoch"] * paper["data"]["batch_size"] >= 20 * 1e5
    assert type(train.build_optimizer(paper)).__name__ == "SGD"
    # Coupled L2 5e-4: the regulariser adds 2.5e-4 ||w||², whose gradient is 5e-4 w.
    assert train.build_model(paper).layers[1].convs[1].kernel_regularizer.l2 == pytest.approx(2.5e-4)


def test_train_writes_checkpoints_and_logs(tmp_path):
    config = _config(tmp_path)
    out = tmp_path / "run"
    model = train.train(config, str(out), data_root=str(tmp_path / "data"), verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 2 * 3  # epochs x steps_per_epoch
    assert (out / "model.keras").exists()
    lines = (out / "history.csv").read_text().strip().splitlines()
    assert lines[0].startswith("epoch") and len(lines) == 3
    assert any((out / "logs").rglob("*tfevents*"))
    assert not (out / "backup").exists()  # removed once the run completes


@pytest.mark.parametrize("loss", ["l1", "l2", "psnr"])
def test_the_config_loss_is_what_fit_minimises(tmp_path, loss):
    # A negligible rate and frozen batch norm: the logged loss of the one step is the
    # returned model's loss on the first batch.
    config = _config(tmp_path)
    config.update(loss=loss, l2=0.0, epochs=1, steps_per_epoch=1,
                  optimizer={"name": "sgd", "learning_rate": 1e-12})
    config["model"]["freeze_batch_norm"] = True
    model = train.train(config, str(tmp_path / "run"), data_root=str(tmp_path / "data"), verbose=0)
    with open(tmp_path / "run" / "history.csv") as handle:
        logged = float(next(csv.DictReader(handle))["loss"])
    inputs, target = next(iter(train.train_dataset(config, str(tmp_path / "data"))))
    error = model(inputs, training=False).numpy() - target.numpy()
    want = {"l1": np.abs(error).mean(), "l2": np.square(error).mean(),
            "psnr": np.mean(10 * np.log10(np.square(error).mean(axis=(1, 2, 3))))}
    assert logged == pytest.approx(want[loss], rel=1e-4)
    for other in set(want) - {loss}:
        assert logged != pytest.approx(want[other], rel=0.1)
    # The checkpoint, compiled with the loss, loads back as it was saved.
    saved = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert saved.loss == model.loss


def _run_killed_at(tmp_path, config, out, iteration):
    """Trains in a subprocess that dies hard (no cleanup) when the optimizer reaches
    ``iteration``; returns the backup's metadata."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    script = f"""
import os
import keras
from deepam_tf import train

class Kill(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == {iteration}:
            os._exit(3)

fit = keras.Model.fit
keras.Model.fit = lambda self, *a, callbacks=(), **k: fit(self, *a, callbacks=list(callbacks) + [Kill()], **k)
train.train(train.load_config({str(tmp_path / "config.json")!r}), {str(out)!r},
            data_root={str(tmp_path / "data")!r}, verbose=0)
"""
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == 3, killed.stderr[-2000:]
    return json.loads((out / "backup" / "training_metadata.json").read_text())


def test_killed_run_resumes_where_it_stopped_even_when_killed_twice_in_one_epoch(tmp_path):
    config = _config(tmp_path)  # 3 epochs of 3 steps; a backup every 2 steps
    config["epochs"] = 3
    out = tmp_path / "run"
    _run_killed_at(tmp_path, config, out, 5)  # in epoch 2, after a backup at step 4
    # Resumed at step 4, so epoch 2 takes steps 5-6 only; then a backup at step 6 (before
    # epoch 2's end: it records epoch index 1, where Keras alone would record 0) and a
    # kill at step 7, in epoch 3. Keras alone would rerun epoch 2 whole, steps 5-7.
    assert _run_killed_at(tmp_path, config, out, 7)["epoch"] == 1
    model = train.train(config, str(out), data_root=str(tmp_path / "data"), verbose=0)
    # Resumed at step 6 in epoch 3: the run ends at 3 x 3 = 9 steps, as a run never killed
    # does, with one history row per epoch, each written once.
    assert int(model.optimizer.iterations.numpy()) == 3 * 3
    with open(out / "history.csv") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["0", "1", "2"]


def test_init_starts_from_saved_weights_and_refuses_other_architectures(tmp_path):
    config = _config(tmp_path)
    source = train.build_model(config)
    path = str(tmp_path / "source.keras")
    source.save(path)
    fresh = train.build_model(config)
    assert any(not np.array_equal(a, b) for a, b in zip(fresh.get_weights(), source.get_weights()))
    started = train.build_model({**config, "init": path})
    for a, b in zip(started.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)
    other = {**config, "model": {**config["model"], "features": 12}, "init": path}
    with pytest.raises(ValueError, match="features=8"):
        train.build_model(other)


def test_frozen_batch_norm_keeps_its_statistics_while_the_rest_trains(tmp_path):
    import keras

    config = _config(tmp_path)
    source = train.build_model(config)
    rng = np.random.default_rng(3)
    for variable in source.weights:  # statistics and scales far from a fresh layer's
        variable.assign(rng.uniform(0.5, 1.5, variable.shape) if "variance" in variable.path
                        else rng.normal(0.0, 0.3, variable.shape))
    path = str(tmp_path / "source.keras")
    source.save(path)
    config = {**config, "init": path, "epochs": 1, "model": {**config["model"], "freeze_batch_norm": True}}
    model = train.train(config, str(tmp_path / "run"), data_root=str(tmp_path / "data"), verbose=0)
    norms = {w.path for layer in model.batch_norm_layers() for w in layer.weights}
    assert len(norms) == 4 * (config["model"]["depth"] - 1)
    changed = set()
    for before, after in zip(source.weights, model.weights):
        if not np.array_equal(keras.ops.convert_to_numpy(before), keras.ops.convert_to_numpy(after)):
            changed.add(after.path)
    assert changed and not changed & norms  # the convolutions moved, batch norm did not
    saved = keras.saving.load_model(str(tmp_path / "run" / "model.keras"))
    for a, b in zip(saved.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert saved.freeze_batch_norm and not source.freeze_batch_norm  # reloaded frozen
    assert len(saved.trainable_weights) == len(model.trainable_weights) < len(source.trainable_weights)
    inputs = {"image": np.full((2, 16, 16, 1), 0.5, np.float32), "noise_level": np.full((2, 1), 0.1, np.float32)}
    np.testing.assert_array_equal(model(inputs, training=True), model(inputs, training=False))


@pytest.mark.parametrize("bad", [b"not an image", b"\x89PNG\r\n\x1a\n truncated"])
def test_an_unreadable_training_image_is_named_before_anything_is_written(tmp_path, bad):
    config = _config(tmp_path)
    (tmp_path / "data" / "train" / "9.png").write_bytes(bad)
    with pytest.raises(ValueError, match=r"9.png: not a readable image"):
        train.train(config, str(tmp_path / "run"), data_root=str(tmp_path / "data"), verbose=0)
    assert not (tmp_path / "run").exists()


def test_a_patch_larger_than_a_training_image_is_refused_naming_it(tmp_path):
    # tf.data would stop mid-run with "Need minval < maxval", naming no image or option.
    config = _config(tmp_path)
    iio.imwrite(tmp_path / "data" / "train" / "small.png", skimage.data.camera()[:40, :15])
    with pytest.raises(ValueError, match=r"patch_size 16 does not fit in .*small.png \(40x15\), "
                                         r"the smallest training image"):
        train.train(config, str(tmp_path / "run"), data_root=str(tmp_path / "data"), verbose=0)
    assert not (tmp_path / "run").exists()


def test_a_patch_larger_than_a_rescaled_training_image_is_refused_naming_it(tmp_path):
    config = _config(tmp_path)
    iio.imwrite(tmp_path / "data" / "train" / "small.png", skimage.data.camera()[:40, :22])
    config["data"]["scales"] = [1, 0.7]  # ceil(0.7 * 22) = 16 fits a 16x16 patch, 0.6 would not
    train.check_config(config)
    inputs, clean = next(iter(train.train_dataset(config, str(tmp_path / "data"))))
    assert clean.shape == (4, 16, 16, 1)
    config["data"]["scales"] = [1, 0.6]
    with pytest.raises(ValueError, match=r"patch_size 16 does not fit in .*small.png \(40x22, the "
                                         r"smallest training image\) resized by 0.6, the smallest"):
        train.train(config, str(tmp_path / "run"), data_root=str(tmp_path / "data"), verbose=0)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda c: c["optimizer"].update(learing_rate=1e-3), "unknown key.*learing_rate"),
        (lambda c: c.pop("epochs"), "lacks epochs"),
        (lambda c: c["optimizer"].update(ema=1.0), r"ema must be a decay in \(0, 1\)"),
        (lambda c: c["model"].update(freeze_batch_norm="yes"), "freeze_batch_norm must be true or false"),
        (lambda c: c.update(steps_per_epoch=0), "steps_per_epoch must be a positive integer"),
        (lambda c: c["data"].update(batch_size=2.5), "batch_size must be a positive integer"),
        (lambda c: c["data"].update(sigma=25), "one of sigma, sigma_range"),
        (lambda c: c["data"].update(task="deblur"), "task must be one of"),
        (lambda c: c["model"].update(layers=10), "unknown argument.*layers"),
        (lambda c: c["model"].update(stages=0), "cannot be built"),
        (lambda c: c["model"].update(dtype="bf16"), "cannot be built.*'bf16'"),
        (lambda c: c["optimizer"].update(name="adamw"), "optimizer name must be one of adam, sgd, got 'adamw'"),
        (lambda c: c["optimizer"].update(schedule="linear"), "schedule must be one of constant, cosine, step"),
        (lambda c: c["optimizer"].pop("decay_epochs"), "schedule step needs decay_epochs"),
        (lambda c: c["model"].update(channels=3), r"model has channels=3, guidance_channels=0, but the "
                                                  r"denoise data gives 1 image and 0 guidance channel\(s\) "
                                                  r"\(data channels\)"),
        (lambda c: c["data"].update(task="depth_sr", scale=4), "guidance_channels=0, but the depth_sr data "
                                                               "gives 1 image and 3 guidance"),
        # Values of a wrong type or out of range: before, TypeError tracebacks, Keras'
        # messages about l2/2, or a run that wrote its config.json and then failed.
        (lambda c: c["data"].update(sigma_range="10-40"), r"data sigma_range must be two numbers \[low, high\]"),
        (lambda c: c["data"].update(sigma_range=[10, 300]), r"0 <= low <= high <= 255, got \[10, 300\]"),
        (lambda c: c["data"].pop("sigma_range") and c["data"].update(sigma="25"),
         r"data sigma must be a number in \(0, 255\], got '25'"),
        (lambda c: c.update(l2="5e-4"), r"config l2 must be a number >= 0 .*, got '5e-4'"),
        (lambda c: c.update(l2=-1), "config l2 must be a number >= 0"),
        (lambda c: c.update(backup_every_steps="x"), "backup_every_steps must be a positive integer, got 'x'"),
        (lambda c: c.update(init=5), "config init must be a preset name or a .keras path, got 5"),
        (lambda c: c["optimizer"].update(momentum=1.5), r"momentum must be in \[0, 1\)"),
        (lambda c: c["optimizer"].update(decay_epochs=1), "decay_epochs must be a list of increasing positive"),
        (lambda c: c["optimizer"].update(warmup_steps=6), r"warmup_steps must be an integer in \[0, 6\)"),
        (lambda c: c["data"].update(seed="0"), "data seed must be an integer, got '0'"),
        (lambda c: c.update(loss="mse"), "config loss must be one of l1, l2, psnr, got 'mse'"),
        (lambda c: (c.update(loss="psnr"), c["data"].update(sigma_range=[0, 40])),
         r"loss psnr .* sigma_range must be 1 or more, got \[0, 40\]"),
        (lambda c: (c.update(loss="psnr"), c["data"].pop("sigma_range"), c["data"].update(sigma=0.5)),
         r"loss psnr .* data sigma must be 1 or more, got 0.5"),
        (lambda c: c.update(loss=["l2"]), r"config loss must be one of l1, l2, psnr, got \['l2'\]"),
        (lambda c: c["data"].update(scales=[1, 0]), r"config data scales must be a non-empty list of factors "
                                                    r"in \(0, 1\], .*got \[1, 0\]"),
        (lambda c: c["data"].update(task="depth_sr", scale=4, scales=[1, 0.8]),
         r"config data scales cannot be used with a degradation that prepares its input from the "
         r"full-size image \(DepthDownsampling\)"),
    ],
)
def test_a_bad_config_is_refused_naming_the_key_before_anything_is_written(tmp_path, change, match):
    config = _config(tmp_path)
    change(config)
    with pytest.raises(ValueError, match=match):
        train.train(config, str(tmp_path / "run"), data_root=str(tmp_path / "data"), verbose=0)
    assert not (tmp_path / "run").exists()
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=f"config.json: .*{match}"):
        train.load_config(str(tmp_path / "config.json"))
    with pytest.raises(ValueError, match="is a folder; give a config file"):
        train.load_config(str(tmp_path))
    (tmp_path / "broken.json").write_text('{"model": {}')
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        train.load_config(str(tmp_path / "broken.json"))


def test_a_finished_run_or_another_configs_run_is_never_clobbered(tmp_path):
    config = _config(tmp_path)
    config["epochs"] = 1
    out = tmp_path / "run"
    train.train(config, str(out), data_root=str(tmp_path / "data"), verbose=0)
    finished = (out / "model.keras").read_bytes()
    with pytest.raises(ValueError, match="finished run"):
        train.train(config, str(out), data_root=str(tmp_path / "data"), verbose=0)
    other = {**config, "optimizer": {**config["optimizer"], "learning_rate": 0.1}}
    with pytest.raises(ValueError, match="another config.*optimizer"):
        train.train(other, str(out), data_root=str(tmp_path / "data"), verbose=0)
    assert (out / "model.keras").read_bytes() == finished
    assert json.loads((out / "config.json").read_text()) == config


class _RecordWeights:
    """Patches ``keras.Model.fit`` to record the trainable weights after every step."""

    def __init__(self, monkeypatch):
        import keras

        self.steps = []
        record = self.steps

        class Record(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                record.append([v.numpy() for v in self.model.trainable_variables])

        fit = keras.Model.fit
        monkeypatch.setattr(keras.Model, "fit", lambda model, *a, callbacks=(), **k: fit(
            model, *a, callbacks=list(callbacks) + [Record()], **k))


def _trainable(model):
    return [v.numpy() for v in model.trainable_variables]


def test_moving_average_of_the_weights_is_saved_beside_the_trained_ones(tmp_path, monkeypatch):
    import keras

    config = _config(tmp_path)
    config["optimizer"]["ema"] = 0.6
    recorded = _RecordWeights(monkeypatch)
    out = tmp_path / "run"
    model = train.train(config, str(out), data_root=str(tmp_path / "data"), verbose=0)
    assert len(recorded.steps) == 6
    # Keras' EMA: the weights after the first step, then 0.6 average + 0.4 weights.
    average = recorded.steps[0]
    for weights in recorded.steps[1:]:
        average = [0.6 * a + 0.4 * w for a, w in zip(average, weights)]
    saved = keras.saving.load_model(str(out / "model_ema.keras"))
    for a, s in zip(average, _trainable(saved)):
        np.testing.assert_allclose(s, a, rtol=1e-5, atol=1e-6)
    # fit ends with the average in the model, and its statistics recomputed as saved
    for m, s in zip(model.get_weights(), saved.get_weights()):
        np.testing.assert_allclose(m, s, rtol=1e-5, atol=1e-6)
    trained = keras.saving.load_model(str(out / "model.keras"))
    for t, w in zip(_trainable(trained), recorded.steps[-1]):
        np.testing.assert_array_equal(t, w)
    assert any(not np.allclose(t, a) for t, a in zip(_trainable(trained), average))
    statistics = [(layer.moving_mean.numpy(), layer.moving_variance.numpy())
                  for m in (trained, saved) for layer in m.batch_norm_layers()]
    half = len(statistics) // 2
    assert all(not np.allclose(t[0], s[0]) for t, s in zip(statistics[:half], statistics[half:]))


def test_batch_norm_statistics_recomputed_are_the_batches_own(tmp_path):
    import tensorflow as tf

    config = _config(tmp_path)
    model = train.build_model(config)
    rng = np.random.default_rng(0)
    for variable in model.trainable_variables:  # the fresh last layers output zeros
        variable.assign(rng.normal(0.0, 0.2, variable.shape))
    noisy = tf.random.stateless_uniform((4, 24, 20, 1), (1, 2))
    inputs = {"image": noisy, "noise_level": tf.fill((4, 1), 0.1)}
    before = model(inputs, training=False)
    train.recompute_batch_norm(model, [(inputs, None)] * 3)
    assert {layer.momentum for layer in model.batch_norm_layers()} == {0.99}
    after = model(inputs, training=False)
    # Inference now normalises by the batch's own statistics, as training mode does.
    np.testing.assert_allclose(after, model(inputs, training=True), atol=1e-5)
    assert np.abs(after - before).max() > 1e-3


def test_moving_average_resumes_from_the_backup(tmp_path, monkeypatch):
    config = _config(tmp_path)
    config["epochs"] = 3
    config["optimizer"]["ema"] = 0.6
    out = tmp_path / "run"
    _run_killed_at(tmp_path, config, out, 5)  # the backup holds step 4
    backup = train.build_model(config)
    backup.compile(optimizer=train.build_optimizer(config), loss="mean_absolute_error")
    backup.optimizer.build(backup.trainable_variables)
    backup.load_weights(str(out / "backup" / "latest.weights.h5"))
    assert int(backup.optimizer.iterations.numpy()) == 4
    average = [v.numpy() for v in backup.optimizer._model_variables_moving_average]
    assert any(not np.allclose(a, w) for a, w in zip(average, _trainable(backup)))
    recorded = _RecordWeights(monkeypatch)
    model = train.train(config, str(out), data_root=str(tmp_path / "data"), verbose=0)
    assert len(recorded.steps) == 9 - 4
    for weights in recorded.steps:
        average = [0.6 * a + 0.4 * w for a, w in zip(average, weights)]
    for m, a in zip(_trainable(model), average):
        np.testing.assert_allclose(m, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("schedule, final", [("cosine", 0.1), ("constant", 1.0)])
def test_warmup_ramps_from_zero_then_holds_or_decays(tmp_path, schedule, final):
    config = _config(tmp_path)  # 2 epochs x 3 steps
    config["optimizer"] = {"name": "adam", "learning_rate": 1e-3, "schedule": schedule,
                           "warmup_steps": 2, "final_learning_rate_fraction": 0.1}
    rate = train.learning_rate(config)
    rates = [float(rate(step)) for step in range(7)]
    assert rates[:3] == pytest.approx([0.0, 5e-4, 1e-3])
    assert rates[6] == pytest.approx(final * 1e-3)
    assert (np.diff(rates[2:]) < 0).all() if schedule == "cosine" else rates[2:] == pytest.approx([1e-3] * 5)
