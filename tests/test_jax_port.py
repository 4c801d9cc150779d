"""The JAX port used for GPU training (jax_train/) computes what the Keras model does."""

import json
import os
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "jax_train"))
import average  # noqa: E402
import convert  # noqa: E402
import deepam_jax  # noqa: E402
import degrade  # noqa: E402
import pack as jax_pack  # noqa: E402
import train as jax_train  # noqa: E402

from deepam_tf.data import DepthDownsampling  # noqa: E402
from deepam_tf.models import DeepAM  # noqa: E402
from deepam_tf.ops import differences, reconstruction  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _compilation_cache(tmp_path_factory):
    # Each training run jits its step afresh, and most tests here train the same small
    # model, so the repeats can reuse XLA's executables (this file with -n0 on 2 AVX2 cores: 170 s, 103 s).
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    yield
    jax.config.update("jax_compilation_cache_dir", None)


def _random_weights(model, seed):
    # Random batch-norm statistics and a nonzero last layer, so every weight matters.
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = keras.ops.convert_to_numpy(w)
        if w.path.endswith("moving_variance"):
            value = rng.uniform(0.5, 2.0, value.shape)
        elif w.path.endswith(("moving_mean", "beta", "bias")):
            value = rng.normal(0, 0.1, value.shape)
        elif w.path.endswith("gamma") and "bn" in w.path:
            value = rng.uniform(0.5, 1.5, value.shape)
        else:
            value = rng.normal(0, np.sqrt(1.0 / np.prod(value.shape[:-1])), value.shape)
        w.assign(value.astype(np.float32))
    return {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}


@pytest.mark.parametrize(
    "kwargs",
    [dict(stages=2, channels=1, noise_level_input=True),
     dict(stages=2, channels=3, guidance_channels=1, noise_level_input=True),
     dict(stages=1, channels=1, guidance_channels=3)],
)
def test_forward_matches_keras(kwargs):
    model = DeepAM(**kwargs)
    weights = _random_weights(model, 0)
    rng = np.random.default_rng(1)
    inputs = {"image": rng.uniform(0, 1, (2, 23, 30, kwargs["channels"])).astype(np.float32)}
    if kwargs.get("guidance_channels"):
        inputs["guidance"] = rng.uniform(0, 1, (2, 23, 30, kwargs["guidance_channels"])).astype(np.float32)
    if kwargs.get("noise_level_input"):
        inputs["noise_level"] = np.array([[0.05], [0.2]], np.float32)
    expected = model(inputs if len(inputs) > 1 else inputs["image"], training=False).numpy()
    params, stats = deepam_jax.split_weights(weights)
    options = deepam_jax.model_options(kwargs)
    got, updates = deepam_jax.forward(params, stats, inputs, options, training=False)
    assert updates == {}
    np.testing.assert_allclose(np.asarray(got), expected, atol=2e-4)


def _solve_inputs(seed, height, width):
    """f, v, γ (over two decades) and a loss weight for a batch of two random systems."""
    rng = np.random.default_rng(seed)
    f = rng.uniform(0, 1, (2, height, width, 1)).astype(np.float32)
    v = rng.normal(0, 0.1, (2, height, width, 2)).astype(np.float32)
    gamma = rng.uniform(0.01, 1.0, (2, height, width, 1)).astype(np.float32)
    return f, v, gamma, rng.normal(size=f.shape).astype(np.float32)


def test_reconstruction_gradient_matches_tensorflow():
    f, v, gamma, weight = _solve_inputs(2, 12, 9)
    tensors = [tf.constant(a) for a in (f, v, gamma)]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        loss = tf.reduce_sum(weight * reconstruction.reconstruct(*tensors, tolerance=1e-7))
    expected = tape.gradient(loss, tensors)
    solve = deepam_jax.make_reconstruct(30, 1e-7)
    got = jax.grad(lambda *a: jnp.sum(weight * solve(*a)), argnums=(0, 1, 2))(f, v, gamma)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(np.asarray(g), e.numpy(), atol=1e-4)


def test_unrolled_pcg_matches_the_converged_solve_and_its_gradients():
    # Ten fixed DCT-PCG steps (the GPU training option --pcg-iterations) against the while
    # loop to 1e-7, forward and backward.
    f, v, gamma, weight = _solve_inputs(3, 32, 32)
    solves = [deepam_jax.make_reconstruct(30, 1e-7), deepam_jax.make_reconstruct(10, 0.0, unrolled=True)]
    outputs = [np.asarray(solve(f, v, gamma)) for solve in solves]
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-4)
    grads = [jax.grad(lambda *a: jnp.sum(weight * solve(*a)), argnums=(0, 1, 2))(f, v, gamma)
             for solve in solves]
    for converged, unrolled in zip(*grads):
        np.testing.assert_allclose(np.asarray(unrolled), np.asarray(converged), atol=1e-3)
    # Two steps are not enough: the check above can fail.
    assert np.abs(np.asarray(deepam_jax.make_reconstruct(2, 0.0, unrolled=True)(f, v, gamma))
                  - outputs[0]).max() > 1e-3


def test_difference_operators_match():
    u = np.random.default_rng(3).normal(size=(1, 7, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(deepam_jax.gradient(u), differences.gradient(u).numpy(), atol=1e-6)
    v = np.random.default_rng(4).normal(size=(1, 7, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(
        deepam_jax.gradient_adjoint(v), differences.gradient_adjoint(v).numpy(), atol=1e-6
    )


@pytest.mark.parametrize("scale", [4, 8])
def test_depth_degradation_matches(scale):
    depth = np.random.default_rng(5).uniform(0, 1, (37, 50, 1)).astype(np.float32)
    expected = DepthDownsampling(scale).prepare({"image": tf.constant(depth)})["degraded"].numpy()
    np.testing.assert_allclose(degrade.depth_input(depth, scale), expected, atol=1e-6)


def test_training_step_moves_batch_norm_statistics_like_keras():
    model = DeepAM(stages=1, channels=1)
    weights = _random_weights(model, 6)
    x = np.random.default_rng(7).uniform(0, 1, (4, 16, 16, 1)).astype(np.float32)
    model(x, training=True)  # Keras updates the moving statistics in place
    params, stats = deepam_jax.split_weights(weights)
    _, updates = deepam_jax.forward(params, stats, {"image": x}, deepam_jax.model_options({"stages": 1}), training=True)
    for w in model.weights:
        if w.path in updates:
            np.testing.assert_allclose(np.asarray(updates[w.path]), w.numpy(), atol=1e-4, err_msg=w.path)
    assert len(updates) == 2 * 9


def test_convert_refuses_mismatched_weights(tmp_path):
    model = DeepAM(stages=1, channels=1)
    weights = {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}
    weights.pop(next(iter(weights)))
    with pytest.raises(ValueError, match="missing"):
        convert.load_into(DeepAM(stages=1, channels=1), weights)


def test_sampler_noise_follows_the_sigma_override():
    config = {"model": {"noise_level_input": True},
              "data": {"sigma_range": [0, 55], "patch_size": 16}}
    fixed = jax_train.with_sigma(config, [25])
    assert "sigma_range" not in fixed["data"] and "sigma_range" in config["data"]
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.3, 0.7, (2, 40, 40, 1)).astype(np.float32)
    images = {"image": clean, "target": clean, "sizes": np.array([[40, 40], [32, 36]])}
    inputs, target = jax_train.make_sampler(images, fixed, 16, 64)(jax.random.PRNGKey(0))
    np.testing.assert_allclose(np.asarray(inputs["noise_level"]), 25 / 255, rtol=1e-6)
    residual = np.asarray(inputs["image"] - target)
    assert abs(residual.std() * 255 - 25) < 0.5
    ranged, _ = jax_train.make_sampler(images, config, 16, 64)(jax.random.PRNGKey(0))
    assert np.ptp(np.asarray(ranged["noise_level"])) > 0.05
    # Two numbers: σ drawn per patch from that range, and the noise has each patch's σ.
    wider = jax_train.with_sigma(fixed, [40, 65])
    assert wider["data"]["sigma_range"] == [40.0, 65.0] and "sigma" not in wider["data"]
    inputs, target = jax_train.make_sampler(images, wider, 16, 256)(jax.random.PRNGKey(1))
    levels = np.asarray(inputs["noise_level"])[:, 0] * 255
    assert levels.min() >= 40 and levels.max() <= 65 and np.ptp(levels) > 20
    per_patch = np.asarray(inputs["image"] - target).std(axis=(1, 2, 3)) * 255
    ratio = per_patch / levels  # a 16x16 patch's std is within about 4% of its σ
    assert abs(ratio.mean() - 1) < 0.01 and np.abs(ratio - 1).max() < 0.2
    for bad in ([0], [50, 40], [1, 2, 3], [-5, 10]):
        with pytest.raises(ValueError, match="sigma must be"):
            jax_train.with_sigma(config, bad)


def test_training_losses_are_mean_absolute_and_mean_squared_error():
    rng = np.random.default_rng(0)
    u, target = rng.uniform(0, 1, (2, 2, 8, 8, 1)).astype(np.float32)
    error = u - target
    np.testing.assert_allclose(float(jax_train.loss_value(u, target, "l1")), np.abs(error).mean(), rtol=1e-6)
    np.testing.assert_allclose(float(jax_train.loss_value(u, target, "l2")), (error ** 2).mean(), rtol=1e-6)
    with pytest.raises(ValueError, match="loss must be one of"):
        jax_train.loss_value(u, target, "huber")
    with pytest.raises(ValueError, match="loss must be one of"):
        jax_train.train("unused.npz", "unused_out.npz", 1, 1, 8, 1e-4, loss="ssim")


def test_learning_rate_rises_over_the_warmup_then_decays_by_cosine():
    rate = jax_train.learning_rate_at
    assert rate(0.0, 1e-3) == pytest.approx(1e-3)  # no warmup: the peak at once
    assert rate(1.0, 1e-3) == pytest.approx(1e-5)
    assert rate(0.0, 1e-3, warmup=0.1) == 0.0
    assert rate(0.05, 1e-3, warmup=0.1) == pytest.approx(5e-4)
    assert rate(0.1, 1e-3, warmup=0.1) == pytest.approx(1e-3)
    assert rate(0.55, 1e-3, final_fraction=0.0, warmup=0.1) == pytest.approx(5e-4)
    assert rate(1.0, 1e-3, final_fraction=0.1, warmup=0.1) == pytest.approx(1e-4)
    fractions = np.linspace(0.1, 1.0, 50)
    assert np.all(np.diff([rate(f, 1e-3, warmup=0.1) for f in fractions]) < 0)
    with pytest.raises(ValueError, match="warmup must be"):
        rate(0.5, 1e-3, warmup=1.0)


def _train_output(path, model, seed):
    arrays = {"weight:" + k: v for k, v in _random_weights(model, seed).items()}
    arrays["config"] = np.array('{"model": {"stages": 1, "channels": 1}}')
    np.savez(path, **arrays)
    return arrays


def test_average_of_runs_converts_to_the_mean_weights(tmp_path):
    model = DeepAM(stages=1, channels=1)
    runs = [_train_output(tmp_path / f"run{i}.npz", model, seed) for i, seed in enumerate((1, 2, 3))]
    average.main([str(tmp_path / "soup.npz")] + [str(tmp_path / f"run{i}.npz") for i in range(3)])
    soup = convert.convert(str(tmp_path / "soup.npz"), str(tmp_path / "soup.keras"))
    for w in soup.weights:
        expected = np.mean([r["weight:" + w.path] for r in runs], axis=0)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(w), expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(FileExistsError):
        average.main([str(tmp_path / "soup.npz"), str(tmp_path / "run0.npz"), str(tmp_path / "run1.npz")])


def test_a_weighted_combination_goes_further_along_a_fine_tune(tmp_path):
    model = DeepAM(stages=1, channels=1)
    start, tuned = (_train_output(tmp_path / f"{n}.npz", model, seed) for n, seed in (("start", 1), ("tuned", 2)))
    for key in start:  # as after a fine-tune with batch norm frozen
        if key.endswith("moving_variance"):
            tuned[key] = start[key]
    np.savez(tmp_path / "tuned.npz", **tuned)
    average.main([str(tmp_path / "further.npz"), str(tmp_path / "start.npz"), str(tmp_path / "tuned.npz"),
                  "--coefficients", "-0.5", "1.5"])
    further = convert.convert(str(tmp_path / "further.npz"), str(tmp_path / "further.keras"))
    for w in further.weights:
        a, b = start["weight:" + w.path], tuned["weight:" + w.path]
        np.testing.assert_allclose(keras.ops.convert_to_numpy(w), a + 1.5 * (b - a), rtol=1e-5, atol=1e-6)
    paths = [str(tmp_path / "start.npz"), str(tmp_path / "tuned.npz")]
    with pytest.raises(ValueError, match="sum to 2"):
        average.average(paths, [0.5, 1.5])
    with pytest.raises(ValueError, match="3 coefficients for 2 inputs"):
        average.average(paths, [0.5, 0.25, 0.25])
    for run, variance in ((start, 3.0), (tuned, 1.0)):  # statistics that disagree
        for key in run:
            if key.endswith("moving_variance"):
                run[key] = np.full_like(run[key], variance)
    np.savez(tmp_path / "start.npz", **start)
    np.savez(tmp_path / "tuned.npz", **tuned)
    with pytest.raises(ValueError, match="negative batch-norm variance"):
        average.average(paths, [-1.0, 2.0])


def test_convert_can_recompute_the_batch_norm_statistics_of_an_average(tmp_path, monkeypatch):
    import imageio.v3 as iio
    import skimage.data

    folder = tmp_path / "data" / "train"
    folder.mkdir(parents=True)
    iio.imwrite(folder / "camera.png", skimage.data.camera()[:96, :96])
    monkeypatch.setenv("DEEPAM_DATA", str(tmp_path / "data"))
    model = DeepAM(stages=1, channels=1)
    runs = [_train_output(tmp_path / f"run{i}.npz", model, seed) for i, seed in enumerate((1, 2))]
    config = {"model": {"stages": 1, "channels": 1},
              "data": {"train": "train", "sigma": 25, "patch_size": 16, "batch_size": 1024}}
    for run in runs:
        run["config"] = np.array(json.dumps(config))
    for i, run in enumerate(runs):
        np.savez(tmp_path / f"run{i}.npz", **run)
    average.main([str(tmp_path / "soup.npz"), str(tmp_path / "run0.npz"), str(tmp_path / "run1.npz")])
    soup = convert.convert(str(tmp_path / "soup.npz"), str(tmp_path / "soup.keras"), batch_norm=True)
    recomputed = 0
    for w in soup.weights:
        expected = np.mean([r["weight:" + w.path] for r in runs], axis=0)
        value = keras.ops.convert_to_numpy(w)
        if w.path.endswith(("moving_mean", "moving_variance")):
            recomputed += not np.allclose(value, expected)
        else:
            np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7)
    statistics = [w for w in soup.weights if w.path.endswith(("moving_mean", "moving_variance"))]
    assert recomputed == len(statistics) == 2 * len(soup.batch_norm_layers()) > 0


def test_average_refuses_runs_of_other_models(tmp_path):
    _train_output(tmp_path / "one.npz", DeepAM(stages=1, channels=1), 1)
    other = dict(np.load(tmp_path / "one.npz"))
    other.pop(next(k for k in other if k.startswith("weight:")))
    np.savez(tmp_path / "other.npz", **other)
    with pytest.raises(ValueError, match="other weights"):
        average.average([str(tmp_path / "one.npz"), str(tmp_path / "other.npz")])
    with pytest.raises(ValueError, match="at least two"):
        average.average([str(tmp_path / "one.npz")])


def _tiny_pack(path, **model_options):
    model = DeepAM(stages=1, channels=1)
    model(np.zeros((1, 8, 8, 1), np.float32))
    arrays = {"weight:" + w.path: keras.ops.convert_to_numpy(w) for w in model.weights}
    arrays["keras_map"] = np.array(json.dumps(jax_pack.keras_map(model)))
    arrays["config"] = np.array(json.dumps({"model": {"stages": 1, "channels": 1, **model_options},
                                            "data": {"sigma": 25, "patch_size": 8}}))
    rng = np.random.default_rng(0)
    for i in range(2):
        arrays[f"image_{i}"] = rng.integers(0, 256, (12, 12, 1), dtype=np.uint8)
    np.savez(path, **arrays)


def _ticks():
    # A clock that advances one second per reading: the schedule becomes a step count.
    count = iter(range(10**6))
    return lambda: float(next(count))


def test_a_stopped_and_resumed_run_trains_like_an_uninterrupted_one(tmp_path):
    pack = str(tmp_path / "pack.npz")
    _tiny_pack(pack)
    recipe = dict(seconds=7, batch_size=2, patch_size=8, learning_rate=1e-2, warmup=0.3,
                  log_every=1, save_every=1e9)
    assert jax_train.train(pack, str(tmp_path / "whole.npz"), clock=_ticks(), **recipe)
    split = str(tmp_path / "split.npz")
    assert not jax_train.train(pack, split, stop_after=3, clock=_ticks(), **recipe)
    stopped = json.loads(str(np.load(split)["log"]))
    assert (stopped["steps"], stopped["finished"]) == (2, False)
    assert jax_train.resume(pack, split, split, log_every=1, clock=_ticks())
    whole, resumed = np.load(tmp_path / "whole.npz"), np.load(split)
    assert json.loads(str(resumed["log"]))["steps"] == json.loads(str(whole["log"]))["steps"] == 6
    assert int(resumed["adam_count"]) == 6
    start = np.load(pack)
    assert any(not np.array_equal(start[k], whole[k]) for k in start.files if k.startswith("weight:"))
    for k in whole.files:
        if k != "log":
            np.testing.assert_array_equal(resumed[k], whole[k], err_msg=k)
    assert json.loads(str(resumed["log"]))["loss_curve"] == json.loads(str(whole["log"]))["loss_curve"]
    with pytest.raises(ValueError, match="finished"):
        jax_train.resume(pack, split, split)


def test_a_run_with_unrolled_pcg_keeps_that_recipe_across_a_resume(tmp_path):
    pack, split = str(tmp_path / "pack.npz"), str(tmp_path / "split.npz")
    _tiny_pack(pack)
    recipe = dict(seconds=5, batch_size=2, patch_size=8, learning_rate=1e-2, save_every=1e9)
    with pytest.raises(ValueError, match="pcg_iterations must be a positive int"):
        jax_train.train(pack, split, pcg_iterations=0, **recipe)
    assert not jax_train.train(pack, split, stop_after=2, clock=_ticks(), pcg_iterations=6, **recipe)
    assert json.loads(str(np.load(split)["log"]))["recipe"]["pcg_iterations"] == 6
    assert jax_train.resume(pack, split, split, clock=_ticks())
    assert json.loads(str(np.load(split)["log"]))["recipe"]["pcg_iterations"] == 6


def test_a_moving_average_of_the_weights_survives_a_resume_and_converts(tmp_path):
    pack, whole, split = (str(tmp_path / n) for n in ("pack.npz", "whole.npz", "split.npz"))
    _tiny_pack(pack)
    recipe = dict(seconds=7, batch_size=2, patch_size=8, learning_rate=1e-2, save_every=1e9)
    with pytest.raises(ValueError, match="ema must be a decay"):
        jax_train.train(pack, whole, ema=1.0, **recipe)
    assert jax_train.train(pack, whole, clock=_ticks(), ema=0.5, **recipe)
    assert not jax_train.train(pack, split, stop_after=3, clock=_ticks(), ema=0.5, **recipe)
    assert jax_train.resume(pack, split, split, clock=_ticks())
    start, final = np.load(pack), np.load(whole)
    average, resumed = np.load(tmp_path / "whole.ema.npz"), np.load(tmp_path / "split.ema.npz")
    assert json.loads(str(average["log"]))["ema_of"] == "whole.npz"
    kernels = [k for k in final.files if k.startswith("weight:") and k.endswith("kernel")]
    for k in kernels:
        # The resumed run carried its average across the stop (saved in its state).
        np.testing.assert_array_equal(resumed[k], average[k], err_msg=k)
        # Neither the starting weights nor the last ones.
        assert not np.array_equal(average[k], final[k]) and not np.array_equal(average[k], start[k])
    np.testing.assert_array_equal(np.load(split)["ema:" + k[len("weight:"):]], average[k])
    model = convert.convert(str(tmp_path / "whole.ema.npz"), str(tmp_path / "ema.keras"))
    got = {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}
    np.testing.assert_array_equal(got[k[len("weight:"):]], average[k])
    # One step: the average is 0.1 of the start and 0.9 of the weights after the step.
    one = str(tmp_path / "one.npz")
    jax_train.train(pack, one, clock=_ticks(), ema=0.999, **dict(recipe, seconds=2))
    assert json.loads(str(np.load(one)["log"]))["steps"] == 1
    stepped, averaged = np.load(one), np.load(tmp_path / "one.ema.npz")
    for k in final.files:
        if k.startswith("weight:"):
            np.testing.assert_allclose(averaged[k], 0.1 * start[k] + 0.9 * stepped[k], rtol=1e-6, atol=1e-7)


def test_frozen_batch_norm_stays_fixed_while_the_convolutions_train(tmp_path):
    pack = str(tmp_path / "pack.npz")
    _tiny_pack(pack)
    recipe = dict(seconds=4, batch_size=2, patch_size=8, learning_rate=1e-2, save_every=1e9)
    runs = {}
    for frozen in (False, True):
        out = str(tmp_path / f"frozen{frozen}.npz")
        assert jax_train.train(pack, out, clock=_ticks(), freeze_batch_norm=frozen, **recipe)
        runs[frozen] = np.load(out)
    # A packed config whose model is frozen (deepam train's way) trains frozen too.
    frozen_pack = str(tmp_path / "frozen_pack.npz")
    _tiny_pack(frozen_pack, freeze_batch_norm=True)
    assert jax_train.train(frozen_pack, str(tmp_path / "by_config.npz"), clock=_ticks(), **recipe)
    runs["by_config"] = np.load(tmp_path / "by_config.npz")
    start = np.load(pack)
    weights = [k for k in start.files if k.startswith("weight:")]
    norms = {k for k in weights if deepam_jax.is_batch_norm(k)}
    assert len(norms) == 4 * 9  # gamma, beta, moving mean and variance of bn1..bn9
    for frozen, run in runs.items():
        began = np.load(frozen_pack if frozen == "by_config" else pack)
        moved = {k for k in weights if not np.array_equal(run[k], began[k])}
        assert moved - norms, frozen  # the convolutions train either way
        assert (moved & norms == set()) == bool(frozen)  # batch norm moves only when not frozen
    # A run continued from a frozen run's output stays frozen.
    again = str(tmp_path / "again.npz")
    assert jax_train.train(pack, again, init=str(tmp_path / "frozenTrue.npz"), clock=_ticks(), **recipe)
    runs["init"] = np.load(again)
    for frozen in (True, "by_config", "init"):
        assert json.loads(str(runs[frozen]["log"]))["recipe"]["freeze_batch_norm"] is True
    # Recomputing the statistics would undo the freeze: refused, for the run and its averages.
    average.main([str(tmp_path / "mean.npz"), str(tmp_path / "frozenFalse.npz"), str(tmp_path / "frozenTrue.npz")])
    for name in ("frozenTrue.npz", "mean.npz"):
        with pytest.raises(ValueError, match="batch norm frozen"):
            convert.convert(str(tmp_path / name), str(tmp_path / "x.keras"), batch_norm=True)
    assert not (tmp_path / "x.keras").exists()
    # Converted as trained: the frozen run's model keeps batch norm frozen, the other not.
    assert convert.convert(str(tmp_path / "frozenTrue.npz"), str(tmp_path / "x.keras")).freeze_batch_norm
    assert not convert.convert(str(tmp_path / "frozenFalse.npz"), str(tmp_path / "y.keras")).freeze_batch_norm


def test_a_run_starts_from_a_keras_file_read_without_tensorflow(tmp_path):
    pack = str(tmp_path / "pack.npz")
    _tiny_pack(pack)
    model = DeepAM(stages=1, channels=1, freeze_batch_norm=True)
    model(np.zeros((1, 8, 8, 1), np.float32))
    saved = _random_weights(model, seed=3)
    model.save(tmp_path / "start.keras")
    keras_map = json.loads(str(np.load(pack)["keras_map"]))
    read, frozen = convert.keras_weights(str(tmp_path / "start.keras"), keras_map)
    assert frozen and read.keys() == saved.keys()
    for name, value in saved.items():
        np.testing.assert_array_equal(read[name], value, err_msg=name)
    out = str(tmp_path / "run.npz")
    recipe = dict(seconds=3, batch_size=2, patch_size=8, learning_rate=1e-2, save_every=1e9)
    assert jax_train.train(pack, out, init=str(tmp_path / "start.keras"), clock=_ticks(), **recipe)
    run = np.load(out)
    log = json.loads(str(run["log"]))
    assert log["recipe"]["init"] == "start.keras" and log["recipe"]["freeze_batch_norm"] is True
    moved = {name for name, value in saved.items() if not np.array_equal(run["weight:" + name], value)}
    assert moved and not any(deepam_jax.is_batch_norm(name) for name in moved)  # trained frozen
    # Another architecture, and a pack made before keras_map, are refused by name.
    other = DeepAM(stages=2, channels=1)
    other(np.zeros((1, 8, 8, 1), np.float32))
    other.save(tmp_path / "other.keras")
    with pytest.raises(ValueError, match="another model than the pack's"):
        jax_train.train(pack, out, init=str(tmp_path / "other.keras"), **recipe)
    old = dict(np.load(pack))
    del old["keras_map"]
    np.savez(tmp_path / "old.npz", **old)
    with pytest.raises(ValueError, match="pack it again"):
        jax_train.train(str(tmp_path / "old.npz"), out, init=str(tmp_path / "start.keras"), **recipe)


def test_a_pack_names_a_shipped_preset_instead_of_holding_its_weights(tmp_path):
    # The pack travels with the repository, so a preset in it is read from there: the
    # pack holds zeros of each weight's shape (compressed to almost nothing).
    from deepam_tf.models import load_preset
    from deepam_tf.models.presets import preset_file

    preset = preset_file("denoise_blind")
    model = load_preset(preset)
    arrays = jax_pack.weight_arrays(model, preset)
    assert str(arrays["weights_file"]) == "deepam_tf/presets/denoise_blind.keras"
    arrays["config"] = np.array(json.dumps({"model": {"stages": 3, "channels": 1}, "data": {"sigma": 25}}))
    arrays["image_0"] = np.zeros((12, 12, 1), np.uint8)
    np.savez_compressed(tmp_path / "pack.npz", **arrays)
    assert os.path.getsize(tmp_path / "pack.npz") < 200_000
    _, weights, _ = jax_train.load_pack(str(tmp_path / "pack.npz"))
    want = {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}
    assert weights.keys() == want.keys()
    for name, value in want.items():
        np.testing.assert_array_equal(weights[name], value, err_msg=name)
    # A model file outside the repository is packed as its weights.
    model.save(tmp_path / "copy.keras")
    assert "weights_file" not in jax_pack.weight_arrays(model, str(tmp_path / "copy.keras"))


def test_every_shipped_denoiser_reads_through_one_keras_map():
    from deepam_tf.models import load_preset
    from deepam_tf.models.presets import preset_file

    keras_map = jax_pack.keras_map(load_preset("denoise_blind"))
    for name in ("denoise_blind", "denoise_sigma15", "denoise_sigma25", "denoise_sigma50"):
        path = preset_file(name)
        read, frozen = convert.keras_weights(path, keras_map)
        assert frozen == (name != "denoise_blind")
        if name == "denoise_sigma50":
            for weight in load_preset(name).weights:
                np.testing.assert_array_equal(read[weight.path], keras.ops.convert_to_numpy(weight))


def test_the_moving_average_decay_follows_tensorflows_num_updates_rule():
    assert jax_train.ema_decay(0.999, 0) == pytest.approx(0.1)
    assert jax_train.ema_decay(0.999, 8) == pytest.approx(0.5)
    assert jax_train.ema_decay(0.999, 10**5) == 0.999
    assert jax_train.ema_path("out/a.npz") == "out/a.ema.npz"


def test_a_resume_given_the_rest_of_the_schedule_finishes_it(tmp_path):
    # The first call stops 3 s in, after its last step at 2 s; the second is given the 4 s
    # that remain of a 7 s schedule by wall time and must not ask for a third.
    pack, split = str(tmp_path / "pack.npz"), str(tmp_path / "split.npz")
    _tiny_pack(pack)
    recipe = dict(seconds=7, batch_size=2, patch_size=8, learning_rate=1e-2, save_every=1e9)
    assert not jax_train.train(pack, split, stop_after=3, clock=_ticks(), **recipe)
    assert jax_train.resume(pack, split, split, stop_after=4, clock=_ticks())
    assert json.loads(str(np.load(split)["log"]))["finished"]


def test_resume_refuses_new_recipe_options_and_outputs_without_state(tmp_path, capsys):
    with pytest.raises(SystemExit):
        jax_train.main(["p.npz", "o.npz", "--resume", "o.npz", "--learning-rate", "1e-3"])
    assert "drop --learning-rate" in capsys.readouterr().err
    _train_output(tmp_path / "old.npz", DeepAM(stages=1, channels=1), 1)
    with pytest.raises(ValueError, match="no training state"):
        jax_train.resume("p.npz", str(tmp_path / "o.npz"), str(tmp_path / "old.npz"))


def test_a_pack_of_a_config_with_scales_holds_one_resized_copy_per_factor(tmp_path):
    import imageio.v3 as iio
    import skimage.data

    from deepam_tf import data

    folder = tmp_path / "data" / "train"
    folder.mkdir(parents=True)
    camera = skimage.data.camera()
    for i in range(2):
        iio.imwrite(folder / f"{i}.png", camera[i * 40: i * 40 + 40, :48])
    config = {"model": {"stages": 1, "features": 8, "depth": 4, "gamma_layer": 3, "fusion_layer": 2},
              "data": {"train": "train", "patch_size": 16, "sigma": 25, "scales": [0.5, 1]},
              "epochs": 1, "steps_per_epoch": 1, "optimizer": {"name": "adam", "learning_rate": 1e-3}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    jax_pack.pack(str(tmp_path / "config.json"), str(tmp_path / "pack.npz"), data_root=str(tmp_path / "data"))
    pack = np.load(tmp_path / "pack.npz")
    assert sorted(k for k in pack.files if k.startswith("image_")) == [f"image_{i}" for i in range(4)]
    for i in range(2):
        clean = camera[i * 40: i * 40 + 40, :48, None]
        half = data.rescale(tf.constant(clean / 255.0, tf.float32), 0.5).numpy() * 255
        assert pack[f"image_{i}"].shape == (20, 24, 1)  # the factors in the config's order
        assert np.abs(pack[f"image_{i}"].astype(float) - half).max() <= 0.5 + 1e-3
        np.testing.assert_array_equal(pack[f"image_{i + 2}"], clean)
    _, _, images = jax_train.load_pack(str(tmp_path / "pack.npz"))
    np.testing.assert_array_equal(images["sizes"], [[20, 24], [20, 24], [40, 48], [40, 48]])
