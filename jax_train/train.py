"""Trains DeepAM on a GPU with JAX from a ``pack.py`` file, for a fixed wall time.

    python jax_train/train.py gpu_pack/depth.npz out/depth_x8.npz --scale 8 \\
        --seconds 400 --batch-size 32 --learning-rate 1e-3

The recipe is the configs' (L1 loss, Adam, flips and 90° rotations, on-the-fly
degradation) with a cosine learning-rate decay over the wall time instead of a step
count; ``--loss l2`` swaps in mean squared error for a final fine-tune. The weights
(Keras paths, batch-norm statistics included) are written to the output every
``--save-every`` seconds and at the end; ``convert.py`` turns them into a
``.keras`` model. Imports JAX, optax and numpy only.

A schedule longer than one call to a GPU machine may run is split: the first call
stops early and saves the whole training state, the next resumes it::

    python jax_train/train.py gpu_pack/denoise.npz out/a.npz --seconds 780 --stop-after 500 ...
    python jax_train/train.py gpu_pack/denoise.npz out/a.npz --resume out/a.npz

A run killed between saves resumes from its last save the same way.

``--ema 0.999`` also keeps an exponential moving average of the weights (batch-norm
statistics included) and writes it beside the output as ``<output stem>.ema.npz``, which
``convert.py`` and ``average.py`` read like any output. The decay is TensorFlow's
``ExponentialMovingAverage(num_updates=...)`` one, ``min(ema, (1 + n) / (10 + n))`` after
n updates, so the starting weights fade out within the first steps.
"""

import argparse
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepam_jax  # noqa: E402
import degrade  # noqa: E402
from convert import REPO, check_same_weights, froze_batch_norm, keras_weights, weights_of  # noqa: E402


def with_sigma(config, sigma):
    """The config with its noise replaced (0-255 scale): one number fixes σ (a fixed-σ
    specialisation of a noise-level-conditioned model keeps its σ input), two ``[low,
    high]`` draw it uniformly from that range per patch."""
    values = [float(s) for s in np.atleast_1d(sigma)]
    data = {k: v for k, v in config["data"].items() if k not in ("sigma", "sigma_range")}
    if len(values) == 1 and values[0] > 0:
        return {**config, "data": {**data, "sigma": values[0]}}
    if len(values) == 2 and 0 <= values[0] < values[1]:
        return {**config, "data": {**data, "sigma_range": values}}
    raise ValueError(f"sigma must be one level > 0 or a range LOW HIGH with 0 <= LOW < HIGH, got {sigma!r}")


def load_pack(path, scale=None, sigma=None):
    """``(config, weights, images)``; images is ``{"image", "target", "guidance"?, "sizes"}``
    with every sample zero-padded to the largest (the sampler crops inside ``sizes``).
    ``scale`` / ``sigma`` override the config's depth scale / noise."""
    pack = np.load(path)
    config = json.loads(str(pack["config"]))
    if sigma is not None:
        config = with_sigma(config, sigma)
    weights = {k[len("weight:"):]: pack[k] for k in pack.files if k.startswith("weight:")}
    if "weights_file" in pack.files:  # a preset of the repository, which travels with the pack
        stored = os.path.join(REPO, str(pack["weights_file"]))
        start, _ = keras_weights(stored, json.loads(str(pack["keras_map"])))
        check_same_weights(start, weights, stored, "the pack's model")
        weights = start
    count = sum(k.startswith("image_") for k in pack.files)
    task = config["data"].get("task", "denoise")
    if task == "depth_sr":
        config["data"]["scale"] = scale or config["data"]["scale"]
    targets, inputs, guidance, sizes = [], [], [], []
    for i in range(count):
        target = pack[f"image_{i}"].astype(np.float32) / 255.0
        targets.append(target)
        inputs.append(degrade.depth_input(target, config["data"]["scale"]) if task == "depth_sr" else target)
        if f"guidance_{i}" in pack.files:
            guidance.append(pack[f"guidance_{i}"].astype(np.float32) / 255.0)
        sizes.append(target.shape[:2])
    height, width = np.max(sizes, axis=0)

    def stack(arrays):
        out = np.zeros((len(arrays), height, width, arrays[0].shape[-1]), np.float32)
        for i, a in enumerate(arrays):
            out[i, : a.shape[0], : a.shape[1]] = a
        return out

    images = {"image": stack(inputs), "target": stack(targets), "sizes": np.array(sizes, np.int32)}
    if guidance:
        images["guidance"] = stack(guidance)
    return config, weights, images


def _keras_map(pack_path):
    pack = np.load(pack_path)
    if "keras_map" not in pack.files:
        raise ValueError(f"{pack_path} has no keras_map (packed by an older pack.py): "
                         "pack it again to start from a .keras file")
    return json.loads(str(pack["keras_map"]))


_LOSSES = {
    "l1": lambda error: jnp.mean(jnp.abs(error)),  # the paper's
    "l2": lambda error: jnp.mean(jnp.square(error)),  # what PSNR measures
}
LOSSES = tuple(_LOSSES)


def _loss_function(loss):
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return _LOSSES[loss]


def loss_value(u, target, loss="l1"):
    """The training loss: ``"l1"`` (the paper's, mean absolute error) or ``"l2"`` (mean
    squared error, the loss PSNR measures, for a final fine-tune)."""
    return _loss_function(loss)(u - target)


def _dihedral(x, k):
    # One of the 8 flips/rotations of a square patch [P, P, C], chosen by k in [0, 8).
    variants = [jnp.rot90(x, r, axes=(0, 1)) for r in range(4)]
    variants += [jnp.flip(v, axis=1) for v in variants]
    return jnp.stack(variants)[k]


def make_sampler(images, config, patch_size, batch_size):
    """``sample(key) -> (inputs, target)``: random patches, flips and rotations, and the
    config's noise (fixed σ or σ range, with the noise level for conditioned models)."""
    spec, options = config["data"], config["model"]
    device_images = {k: jnp.asarray(v) for k, v in images.items() if k != "sizes"}
    sizes = jnp.asarray(images["sizes"])
    names = sorted(device_images)

    def one(key):
        k_index, k_y, k_x, k_aug = jax.random.split(key, 4)
        i = jax.random.randint(k_index, [], 0, sizes.shape[0])
        y = jax.random.randint(k_y, [], 0, sizes[i, 0] - patch_size + 1)
        x = jax.random.randint(k_x, [], 0, sizes[i, 1] - patch_size + 1)
        aug = jax.random.randint(k_aug, [], 0, 8)
        out = {}
        for name in names:
            a = device_images[name][i]
            patch = jax.lax.dynamic_slice(a, (y, x, 0), (patch_size, patch_size, a.shape[-1]))
            out[name] = _dihedral(patch, aug)
        return out

    def sample(key):
        k_patch, k_sigma, k_noise = jax.random.split(key, 3)
        batch = jax.vmap(one)(jax.random.split(k_patch, batch_size))
        target = batch.pop("target")
        inputs = dict(batch)
        if spec.get("task", "denoise") != "depth_sr":
            if "sigma_range" in spec:
                low, high = (s / 255.0 for s in spec["sigma_range"])
                sigma = jax.random.uniform(k_sigma, [batch_size, 1], minval=low, maxval=high)
            else:
                sigma = jnp.full([batch_size, 1], spec["sigma"] / 255.0)
            noise = jax.random.normal(k_noise, target.shape)
            inputs["image"] = target + sigma[:, None, None, :] * noise
            if options.get("noise_level_input"):
                inputs["noise_level"] = sigma
        return inputs, target

    return sample


def learning_rate_at(fraction, peak, final_fraction=0.01, warmup=0.0):
    """The rate after ``fraction`` of the run: a linear rise from 0 over the first
    ``warmup`` fraction (a restart's Adam moments start at zero, so its first steps are
    full-size sign steps), then cosine decay from ``peak`` to ``final_fraction * peak``."""
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup must be a fraction of the run in [0, 1), got {warmup}")
    if fraction < warmup:
        return peak * fraction / warmup
    decay = (fraction - warmup) / (1 - warmup)
    return peak * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * decay)))


RECIPE = ("seconds", "batch_size", "patch_size", "learning_rate", "final_fraction", "scale",
          "seed", "init", "sigma", "loss", "warmup", "pcg_iterations", "ema", "freeze_batch_norm")


def ema_path(output):
    """Where a run with ``ema`` writes its moving average: ``a.npz`` -> ``a.ema.npz``."""
    return (output[:-4] if output.endswith(".npz") else output) + ".ema.npz"


def ema_decay(ema, updates):
    """The decay of the ``updates``-th moving-average update (TensorFlow's num_updates rule)."""
    return min(ema, (1.0 + updates) / (10.0 + updates))


def train(pack_path, output, seconds, batch_size=32, patch_size=None, learning_rate=1e-3,
          final_fraction=0.01, scale=None, seed=0, save_every=60.0, log_every=100, init=None,
          sigma=None, loss="l1", warmup=0.0, pcg_iterations=None, ema=None,
          freeze_batch_norm=None, stop_after=None, clock=time.time):
    """Trains for one schedule of ``seconds`` (warmup, then cosine decay). ``stop_after``
    ends this call earlier; the output then holds the whole training state (Adam moments,
    random key, schedule position) and ``resume`` runs the rest of the same schedule.
    ``pcg_iterations``: solve with exactly this many unrolled PCG steps instead of the
    model's while loop to its tolerance (fewer kernel launches and no per-iteration
    readback on a GPU). ``ema``: the decay of a moving average of the weights, written
    to :func:`ema_path` of the output. ``freeze_batch_norm``: batch norm in inference
    mode with its scale, offset and statistics fixed, as ``deepam train``'s option of
    that name (for fine-tunes on narrower data than the model's, e.g. one σ); a packed
    config whose model says ``"freeze_batch_norm": true`` sets it too, as does an ``init``
    (a run or a ``.keras`` model) whose batch norm was frozen."""
    if ema is not None and not 0.0 < ema < 1.0:
        raise ValueError(f"ema must be a decay in (0, 1), e.g. 0.999, got {ema!r}")
    if pcg_iterations is not None and (not isinstance(pcg_iterations, int) or pcg_iterations < 1):
        raise ValueError(f"pcg_iterations must be a positive int, got {pcg_iterations!r}")
    recipe = dict(seconds=float(seconds), batch_size=batch_size, patch_size=patch_size,
                  learning_rate=learning_rate, final_fraction=final_fraction, scale=scale,
                  seed=seed, init=os.path.basename(init) if init else None, sigma=sigma,
                  loss=loss, warmup=warmup, pcg_iterations=pcg_iterations, ema=ema)
    # An unknown loss or a bad warmup fails before the pack is read.
    _loss_function(loss)
    learning_rate_at(0.0, learning_rate, final_fraction, warmup)
    config, weights, images = load_pack(pack_path, scale, sigma)
    recipe["patch_size"] = patch_size or config["data"].get("patch_size", 32)
    init_frozen = False
    if init:
        # Continue from an earlier run's output or a .keras model (same model, every
        # weight replaced); a model whose batch norm was frozen keeps it frozen.
        if init.endswith(".keras"):
            start, init_frozen = keras_weights(init, _keras_map(pack_path))
        else:
            _, start, log = weights_of(init)
            init_frozen = froze_batch_norm(log)
        check_same_weights(start, weights, init, "the pack's model")
        weights = start
    frozen = freeze_batch_norm or config["model"].get("freeze_batch_norm") or init_frozen
    recipe["freeze_batch_norm"] = bool(frozen) or None
    state = {"weights": weights, "adam": None, "key": np.asarray(jax.random.PRNGKey(seed)),
             "steps": 0, "position": 0.0, "loss_curve": [], "ema": None}
    return _run(config, images, recipe, state, output, stop_after, save_every, log_every, clock)


def resume(pack_path, output, previous, stop_after=None, save_every=60.0, log_every=100,
           clock=time.time):
    """Continues the schedule that a ``train`` (or ``resume``) call stopped early and
    saved to ``previous``: same recipe, weights, Adam moments, random stream and
    schedule position, so that stopping and resuming trains like one uninterrupted run."""
    saved = np.load(previous)
    if "adam_count" not in saved.files:
        raise ValueError(f"{previous} holds no training state (written by an older train.py?)")
    saved_config, weights, log = weights_of(previous)
    if log["finished"]:
        raise ValueError(f"{previous} finished its {log['recipe']['seconds']:.0f} s schedule; "
                         "start a new one with --init")
    recipe = log["recipe"]
    config, _, images = load_pack(pack_path, recipe["scale"], recipe["sigma"])
    if saved_config != config:
        raise ValueError(f"{pack_path} holds another config than the run saved in {previous}")
    adam = {part: {k[len(part) + 1:]: saved[k] for k in saved.files if k.startswith(part + ":")}
            for part in ("adam_mu", "adam_nu")}
    adam["count"] = saved["adam_count"]
    ema = None
    if recipe.get("ema"):  # recipes saved before this option have none
        ema = {k[len("ema:"):]: saved[k] for k in saved.files if k.startswith("ema:")}
    state = {"weights": weights, "adam": adam, "key": saved["rng_key"], "steps": log["steps"],
             "position": log["seconds"], "loss_curve": log["loss_curve"], "ema": ema}
    return _run(config, images, recipe, state, output, stop_after, save_every, log_every, clock)


def _run(config, images, recipe, state, output, stop_after, save_every, log_every, clock):
    import optax  # only training needs it; the sampler does not

    loss_of_error = _loss_function(recipe["loss"])
    seconds, peak = recipe["seconds"], recipe["learning_rate"]

    def rate_at(position):
        return learning_rate_at(position / seconds, peak, recipe["final_fraction"], recipe["warmup"])

    options = deepam_jax.model_options(config["model"])
    if recipe.get("pcg_iterations"):  # recipes saved before this option have none
        options.update(unrolled=True, iterations=recipe["pcg_iterations"])
    params, stats = deepam_jax.split_weights({k: jnp.asarray(v) for k, v in state["weights"].items()})
    sample = make_sampler(images, config, recipe["patch_size"], recipe["batch_size"])
    optimizer = optax.scale_by_adam(eps=1e-7)
    opt_state = optimizer.init(params)
    if state["adam"] is not None:
        adam = state["adam"]
        opt_state = opt_state._replace(
            count=jnp.asarray(adam["count"]),
            mu={k: jnp.asarray(adam["adam_mu"][k]) for k in params},
            nu={k: jnp.asarray(adam["adam_nu"][k]) for k in params})

    frozen = bool(recipe.get("freeze_batch_norm"))  # recipes saved before this option have none

    def loss_fn(params, stats, inputs, target):
        u, updates = deepam_jax.forward(params, stats, inputs, options, training=not frozen)
        return loss_of_error(u - target), updates

    def step(params, stats, opt_state, key, rate):
        inputs, target = sample(key)
        (value, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, inputs, target)
        if frozen:
            grads = {k: jnp.zeros_like(g) if deepam_jax.is_batch_norm(k) else g for k, g in grads.items()}
        direction, opt_state = optimizer.update(grads, opt_state, params)
        params = jax.tree_util.tree_map(lambda p, d: p - rate * d, params, direction)
        return params, dict(stats, **updates), opt_state, value

    key = jnp.asarray(state["key"])
    steps, position, losses = state["steps"], state["position"], list(state["loss_curve"])
    decay = recipe.get("ema")
    average = None
    if decay:
        average = {k: jnp.asarray(v) for k, v in (state["ema"] or {**params, **stats}).items()}

    def update_average(average, params, stats, rate):
        current = {**params, **stats}
        return {k: rate * v + (1.0 - rate) * current[k] for k, v in average.items()}

    def save(finished):
        arrays = {"weight:" + k: np.asarray(v) for k, v in {**params, **stats}.items()}
        arrays.update({"adam_mu:" + k: np.asarray(v) for k, v in opt_state.mu.items()})
        arrays.update({"adam_nu:" + k: np.asarray(v) for k, v in opt_state.nu.items()})
        arrays["adam_count"] = np.asarray(opt_state.count)
        arrays["rng_key"] = np.asarray(key)
        arrays["config"] = np.array(json.dumps(config))
        log = {
            # "seconds": the schedule position of the last step taken.
            "steps": steps, "seconds": position, "finished": finished, "recipe": recipe,
            "device": str(jax.devices()[0]), "loss_curve": losses,
        }
        arrays["log"] = np.array(json.dumps(log))
        if average is not None:
            arrays.update({"ema:" + k: np.asarray(v) for k, v in average.items()})
            # The average alone, as an output that convert.py and average.py read.
            alone = {"weight:" + k: np.asarray(v) for k, v in average.items()}
            alone["config"] = arrays["config"]
            alone["log"] = np.array(json.dumps(dict(log, ema_of=os.path.basename(output))))
            _write(ema_path(output), alone)
        _write(output, arrays)

    begin = clock()
    compiled_step = jax.jit(step).lower(params, stats, opt_state, key, jnp.float32(0)).compile()
    if average is not None:
        update_average = jax.jit(update_average).lower(average, params, stats, jnp.float32(0)).compile()
    started = clock()
    print(f"{output}: compiled in {started - begin:.1f} s, resuming at step {steps}, "
          f"{position:.0f} of {seconds:.0f} s" if steps else
          f"{output}: compiled in {started - begin:.1f} s", flush=True)
    stop_after = float("inf") if stop_after is None else stop_after
    last_save, running, offset, first_step = started, [], position, steps
    while True:
        now = clock()
        here = offset + (now - started)
        if here >= seconds or now - started >= stop_after:
            break
        rate = rate_at(here)
        key, sub = jax.random.split(key)
        params, stats, opt_state, value = compiled_step(params, stats, opt_state, sub, jnp.float32(rate))
        if average is not None:
            # steps counts the updates before this one: the schedule's, across resumes.
            average = update_average(average, params, stats, jnp.float32(ema_decay(decay, steps)))
        running.append(value)
        steps, position = steps + 1, here
        if steps % log_every == 0:
            mean = float(jnp.mean(jnp.stack(running)))
            running = []
            losses.append([steps, round(here, 1), mean])
            print(f"{output}: step {steps} {here:.0f}s lr {rate:.2e} loss {mean:.5f}", flush=True)
        if now - last_save > save_every:
            save(False)
            last_save = now
    took = clock() - started
    done = steps - first_step
    per_step = took / max(done, 1)
    # A stop less than one step before the schedule's end (a resume given the rest of a
    # schedule that the last call measured to its stop, not to its last step) finishes it.
    finished = here >= seconds or seconds - here < per_step
    save(finished)
    print(f"{output}: {done} steps in {took:.0f} s ({per_step * 1e3:.1f} ms/step), "
          + ("schedule finished" if finished else
             f"stopped at {position:.0f} of {seconds:.0f} s: continue with --resume"), flush=True)
    return finished


def _write(path, arrays):
    temporary = path + ".tmp.npz"
    np.savez(temporary, **arrays)
    os.replace(temporary, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pack")
    parser.add_argument("output")
    parser.add_argument("--seconds", type=float,
                        help="length of the schedule (warmup, then cosine decay), in training seconds")
    parser.add_argument("--stop-after", type=float,
                        help="end this call after this many seconds, saving the state for --resume")
    parser.add_argument("--resume", metavar="PREVIOUS",
                        help="continue the schedule saved in PREVIOUS (its recipe, not these options)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--patch-size", type=int, help="default: the config's")
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--final-fraction", type=float)
    parser.add_argument("--warmup", type=float,
                        help="fraction of --seconds over which the rate rises linearly from 0")
    parser.add_argument("--scale", type=int)
    parser.add_argument("--sigma", type=float, nargs="+", metavar="SIGMA",
                        help="train at this fixed noise level, or with σ drawn per patch from "
                             "LOW HIGH (0-255), instead of the config's noise")
    parser.add_argument("--loss", choices=LOSSES,
                        help="l1 (the paper's, default) or l2 (mean squared error, for a PSNR fine-tune)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--pcg-iterations", type=int,
                        help="exactly this many unrolled PCG steps per solve (default: the "
                             "model's while loop to its tolerance)")
    parser.add_argument("--ema", type=float,
                        help="also write a moving average of the weights with this decay "
                             "(e.g. 0.999) to OUTPUT's stem + .ema.npz")
    parser.add_argument("--freeze-batch-norm", action="store_true", default=None,
                        help="batch norm in inference mode, its scale, offset and statistics fixed "
                             "(fine-tunes on narrower data, e.g. one --sigma)")
    parser.add_argument("--save-every", type=float, default=60.0)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--init", help="start from the weights of this train.py output or .keras "
                                       "model (same architecture as the pack's)")
    args = parser.parse_args(argv)
    given = [name for name in RECIPE if getattr(args, name) is not None]
    if args.resume:
        if given:
            parser.error(f"--resume takes the recipe from {args.resume}; "
                         f"drop --{given[0].replace('_', '-')}")
        resume(args.pack, args.output, args.resume, args.stop_after, args.save_every, args.log_every)
        return
    if args.seconds is None:
        parser.error("--seconds is required (or --resume)")
    # Options not given take train()'s defaults.
    train(args.pack, args.output, save_every=args.save_every, log_every=args.log_every,
          stop_after=args.stop_after, **{name: getattr(args, name) for name in given})


if __name__ == "__main__":
    main()
