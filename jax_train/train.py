"""Trains DeepAM on a GPU with JAX from a ``pack.py`` file, for a fixed wall time.

    python jax_train/train.py gpu_pack/depth.npz out/depth_x8.npz --scale 8 \\
        --seconds 400 --batch-size 32 --learning-rate 1e-3

The recipe is the configs' (L1 loss, Adam, flips and 90° rotations, on-the-fly
degradation) with a cosine learning-rate decay over the wall time instead of a step
count; ``--loss l2`` swaps in mean squared error for a final fine-tune. The weights
(Keras paths, batch-norm statistics included) are written to the output every
``--save-every`` seconds and at the end; ``convert.py`` turns them into a
``.keras`` model. Imports JAX, optax and numpy only.
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


def with_fixed_sigma(config, sigma):
    """The config with its noise fixed at ``sigma`` (0-255 scale) instead of a range: a
    fixed-σ specialisation of a noise-level-conditioned model keeps its σ input."""
    data = {k: v for k, v in config["data"].items() if k != "sigma_range"}
    return {**config, "data": {**data, "sigma": float(sigma)}}


def load_pack(path, scale=None, sigma=None):
    """``(config, weights, images)``; images is ``{"image", "target", "guidance"?, "sizes"}``
    with every sample zero-padded to the largest (the sampler crops inside ``sizes``).
    ``scale`` / ``sigma`` override the config's depth scale / noise."""
    pack = np.load(path)
    config = json.loads(str(pack["config"]))
    if sigma:
        config = with_fixed_sigma(config, sigma)
    weights = {k[len("weight:"):]: pack[k] for k in pack.files if k.startswith("weight:")}
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


def train(pack_path, output, seconds, batch_size, patch_size, learning_rate,
          final_fraction=0.01, scale=None, seed=0, save_every=60.0, log_every=100, init=None,
          sigma=None, loss="l1", warmup=0.0):
    import optax  # only training needs it; the sampler does not

    # An unknown loss or a bad warmup fails before the pack is read.
    loss_of_error = _loss_function(loss)
    first_rate = learning_rate_at(0.0, learning_rate, final_fraction, warmup)
    config, weights, images = load_pack(pack_path, scale, sigma)
    patch_size = patch_size or config["data"].get("patch_size", 32)
    if init:
        # Continue from an earlier run's output (same model, every weight replaced).
        previous = np.load(init)
        start = {k[len("weight:"):]: previous[k] for k in previous.files if k.startswith("weight:")}
        if set(start) != set(weights):
            raise ValueError(f"{init} holds other weights than the pack's model")
        weights = start
    options = deepam_jax.model_options(config["model"])
    params, stats = deepam_jax.split_weights({k: jnp.asarray(v) for k, v in weights.items()})
    sample = make_sampler(images, config, patch_size, batch_size)
    optimizer = optax.scale_by_adam(eps=1e-7)
    opt_state = optimizer.init(params)

    def loss_fn(params, stats, inputs, target):
        u, updates = deepam_jax.forward(params, stats, inputs, options, training=True)
        return loss_of_error(u - target), updates

    @jax.jit
    def step(params, stats, opt_state, key, rate):
        inputs, target = sample(key)
        (value, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, inputs, target)
        direction, opt_state = optimizer.update(grads, opt_state, params)
        params = jax.tree_util.tree_map(lambda p, d: p - rate * d, params, direction)
        return params, dict(stats, **updates), opt_state, value

    def save(steps, elapsed, losses):
        arrays = {"weight:" + k: np.asarray(v) for k, v in {**params, **stats}.items()}
        arrays["config"] = np.array(json.dumps(config))
        arrays["log"] = np.array(json.dumps({
            "steps": steps, "seconds": elapsed, "batch_size": batch_size,
            "patch_size": patch_size, "learning_rate": learning_rate, "warmup": warmup,
            "device": str(jax.devices()[0]), "loss": loss, "loss_curve": losses, "seed": seed,
            "init": os.path.basename(init) if init else None,
        }))
        temporary = output + ".tmp.npz"
        np.savez(temporary, **arrays)
        os.replace(temporary, output)

    key = jax.random.PRNGKey(seed)
    start = time.time()
    params, stats, opt_state, value = step(params, stats, opt_state, key, first_rate)
    value.block_until_ready()
    compiled = time.time()
    print(f"{output}: compiled in {compiled - start:.1f} s, first loss {float(value):.5f}", flush=True)
    steps, last_save, losses, running = 1, compiled, [], []
    while True:
        elapsed = time.time() - compiled
        if elapsed >= seconds:
            break
        rate = learning_rate_at(elapsed / seconds, learning_rate, final_fraction, warmup)
        key, sub = jax.random.split(key)
        params, stats, opt_state, value = step(params, stats, opt_state, sub, rate)
        running.append(value)
        steps += 1
        if steps % log_every == 0:
            mean = float(jnp.mean(jnp.stack(running)))
            running = []
            losses.append([steps, round(elapsed, 1), mean])
            print(f"{output}: step {steps} {elapsed:.0f}s lr {rate:.2e} loss {mean:.5f}", flush=True)
        if time.time() - last_save > save_every:
            save(steps, elapsed, losses)
            last_save = time.time()
    save(steps, time.time() - compiled, losses)
    print(f"{output}: {steps} steps in {time.time() - compiled:.0f} s "
          f"({(time.time() - compiled) / steps * 1e3:.1f} ms/step)", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pack")
    parser.add_argument("output")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--patch-size", type=int, help="default: the config's")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--final-fraction", type=float, default=0.01)
    parser.add_argument("--warmup", type=float, default=0.0,
                        help="fraction of --seconds over which the rate rises linearly from 0")
    parser.add_argument("--scale", type=int)
    parser.add_argument("--sigma", type=float, help="train at this fixed noise level (0-255)")
    parser.add_argument("--loss", choices=LOSSES, default="l1",
                        help="l1 (the paper's) or l2 (mean squared error, for a PSNR fine-tune)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every", type=float, default=60.0)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--init", help="start from this train.py output's weights")
    args = parser.parse_args(argv)
    train(args.pack, args.output, args.seconds, args.batch_size, args.patch_size, args.learning_rate,
          args.final_fraction, args.scale, args.seed, args.save_every, args.log_every,
          args.init, args.sigma, args.loss, args.warmup)


if __name__ == "__main__":
    main()
