"""DeepAM in JAX, weight for weight the Keras model of ``deepam_tf``, for GPU training.

The lent GPU machines carry JAX but not TensorFlow, so GPU training runs this port.
Parameters are a flat dict keyed by the Keras weight paths
(``stage1_aggregation/conv1/kernel``, ``.../bn1/moving_mean``, ...), so weights go both
ways without renaming (``convert.py``). ``tests/test_jax_port.py`` checks that this
forward pass and the reconstruction's gradients match the Keras model's.

This module imports JAX and numpy only: it must run where TensorFlow is not installed.
"""

import math
import re

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy import fft as jfft

BN_EPSILON = 1e-3  # keras.layers.BatchNormalization defaults
BN_MOMENTUM = 0.99
MODEL_DEFAULTS = dict(
    stages=3, channels=1, guidance_channels=0, noise_level_input=False, features=64,
    depth=10, gamma_layer=8, fusion_layer=3, guidance_depth=3, residual_gradients=True,
    gamma_floor=1e-3, iterations=30, tolerance=1e-4, unrolled=False,
)


def model_options(config_model):
    """DeepAM constructor kwargs (a config's "model" section) with defaults filled in."""
    options = dict(MODEL_DEFAULTS)
    # Not architecture: initial_gamma (the initialisation), freeze_batch_norm (train.py's recipe).
    unknown = set(config_model) - set(options) - {"initial_gamma", "preconditioner", "freeze_batch_norm"}
    if unknown:
        raise ValueError(f"the JAX port does not support model options {sorted(unknown)}")
    if config_model.get("preconditioner", "dct") != "dct":
        raise ValueError("the JAX port implements the DCT preconditioner only")
    options.update({k: v for k, v in config_model.items() if k in options})
    return options


# --- difference operators (as deepam_tf.ops.differences) ---------------------------

def _diff(u, axis):
    d = jnp.diff(u, axis=axis)
    pad = [(0, 0)] * 4
    pad[axis] = (0, 1)
    return jnp.pad(d, pad)


def _diff_adjoint(p, axis):
    q = lax.slice_in_dim(p, 0, p.shape[axis] - 1, axis=axis)
    before, after = [(0, 0)] * 4, [(0, 0)] * 4
    before[axis], after[axis] = (1, 0), (0, 1)
    return jnp.pad(q, before) - jnp.pad(q, after)


def gradient(u):
    return jnp.concatenate([_diff(u, 2), _diff(u, 1)], axis=-1)


def gradient_adjoint(v):
    vx, vy = jnp.split(v, 2, axis=-1)
    return _diff_adjoint(vx, 2) + _diff_adjoint(vy, 1)


def neumann_laplacian(u):
    return _diff_adjoint(_diff(u, 2), 2) + _diff_adjoint(_diff(u, 1), 1)


# --- reconstruction: DCT-preconditioned CG with an implicit (second-solve) gradient ----

def _dot(a, b):
    return jnp.sum(a * b, axis=(1, 2), keepdims=True)


def _eigenvalues(height, width, dtype):
    def eig(n):
        return 2.0 - 2.0 * jnp.cos(math.pi * jnp.arange(n, dtype=dtype) / n)

    return eig(height)[:, None] + eig(width)[None, :]


def _pcg(gamma, b, x0, iterations, tolerance, unrolled=False):
    """PCG to ``tolerance`` in at most ``iterations`` steps (a while loop), or exactly
    ``iterations`` steps as straight-line code when ``unrolled`` (no loop condition to
    read back per iteration; the denominators' ``tiny`` keeps converged steps at 0)."""
    tiny = jnp.finfo(b.dtype).tiny
    eigenvalues = _eigenvalues(b.shape[1], b.shape[2], b.dtype)[None, :, :, None]
    gamma_mean = jnp.maximum(jnp.mean(gamma, axis=(1, 2), keepdims=True), 1e-6)
    inverse = 1.0 / (gamma_mean + eigenvalues)

    def apply_a(x):
        return gamma * x + neumann_laplacian(x)

    def precondition(r):
        y = jfft.dctn(r, type=2, axes=(1, 2), norm="ortho") * inverse
        return jfft.idctn(y, type=2, axes=(1, 2), norm="ortho")

    r = b - apply_a(x0)
    z = precondition(r)
    threshold = tolerance**2 * _dot(b, b)

    def cond(state):
        i, _, r, _, _ = state
        return jnp.logical_and(i < iterations, jnp.any(_dot(r, r) > threshold))

    def body(state):
        i, x, r, p, rz = state
        ap = apply_a(p)
        alpha = rz / (_dot(p, ap) + tiny)
        x = x + alpha * p
        r = r - alpha * ap
        z = precondition(r)
        rz_next = _dot(r, z)
        p = z + rz_next / (rz + tiny) * p
        return i + 1, x, r, p, rz_next

    state = (0, x0, r, z, _dot(r, z))
    if unrolled:
        for _ in range(iterations):
            state = body(state)
    else:
        state = lax.while_loop(cond, body, state)
    return state[1]


def make_reconstruct(iterations, tolerance, unrolled=False):
    """``reconstruct(f, v, gamma) -> u`` solving ``(Γ + DᵀD) u = Γ f + Dᵀ v`` (both
    solves, forward and gradient, as :func:`_pcg` with these options)."""

    @jax.custom_vjp
    def reconstruct(f, v, gamma):
        return _pcg(gamma, gamma * f + gradient_adjoint(v), f, iterations, tolerance, unrolled)

    def forward(f, v, gamma):
        u = reconstruct(f, v, gamma)
        return u, (f, gamma, u)

    def backward(residuals, du):
        f, gamma, u = residuals
        x = _pcg(gamma, du, jnp.zeros_like(du), iterations, tolerance, unrolled)
        return gamma * x, gradient(x), x * (f - u)

    reconstruct.defvjp(forward, backward)
    return reconstruct


# --- the network ----------------------------------------------------------------------

def _conv(x, kernel, bias=None):
    y = lax.conv_general_dilated(
        x, kernel.astype(x.dtype), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y if bias is None else y + bias.astype(x.dtype)


def _batch_norm(x, params, stats, prefix, training):
    gamma, beta = params[prefix + "/gamma"], params[prefix + "/beta"]
    if training:
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=(0, 1, 2))
        variance = jnp.mean(jnp.square(x32), axis=(0, 1, 2)) - jnp.square(mean)
        variance = jnp.maximum(variance, 0.0)
        updates = {
            prefix + "/moving_mean": BN_MOMENTUM * stats[prefix + "/moving_mean"]
            + (1 - BN_MOMENTUM) * mean,
            prefix + "/moving_variance": BN_MOMENTUM * stats[prefix + "/moving_variance"]
            + (1 - BN_MOMENTUM) * variance,
        }
    else:
        mean, variance = stats[prefix + "/moving_mean"], stats[prefix + "/moving_variance"]
        updates = {}
    scale = gamma * lax.rsqrt(variance + BN_EPSILON)
    y = x * scale.astype(x.dtype) + (beta - mean * scale).astype(x.dtype)
    return y, updates


def forward(params, stats, inputs, options, training=False, compute_dtype=jnp.float32):
    """DeepAM's output ``u`` and the batch-norm statistics updates (empty unless training).

    ``inputs``: ``{"image": [B,H,W,C]}`` plus ``"guidance"`` and ``"noise_level"``
    ``[B, 1]`` as the model is configured. Convolutions run in ``compute_dtype``; the
    reconstruction always in float32.
    """
    o = options
    image = inputs["image"].astype(jnp.float32)
    reconstruct = make_reconstruct(o["iterations"], o["tolerance"], o["unrolled"])
    noise_map = None
    if o["noise_level_input"]:
        noise_map = jnp.ones_like(image[..., :1]) * inputs["noise_level"][:, None, None, :]
    updates = {}
    u = image
    for k in range(1, o["stages"] + 1):
        guidance_features = None
        if o["guidance_channels"]:
            g = inputs["guidance"].astype(compute_dtype)
            for i in range(1, o["guidance_depth"] + 1):
                name = f"stage{k}_guidance/conv{i}"
                g = jax.nn.relu(_conv(g, params[name + "/kernel"], params[name + "/bias"]))
            guidance_features = g
        prefix = f"stage{k}_aggregation"
        x = u if noise_map is None else jnp.concatenate([u, noise_map], axis=-1)
        x = x.astype(compute_dtype)
        gamma_features = None
        for i in range(1, o["depth"]):
            x = _conv(x, params[f"{prefix}/conv{i}/kernel"])
            x, bn_updates = _batch_norm(x, params, stats, f"{prefix}/bn{i}", training)
            updates.update(bn_updates)
            x = jax.nn.relu(x)
            if i == o["fusion_layer"] and guidance_features is not None:
                x = jnp.concatenate([x, guidance_features], axis=-1)
            if i == o["gamma_layer"]:
                gamma_features = x
        last = f"{prefix}/conv{o['depth']}"
        v = _conv(x, params[last + "/kernel"], params[last + "/bias"]).astype(jnp.float32)
        if o["residual_gradients"]:
            v = v + gradient(u)
        name = f"stage{k}_gamma/conv"
        gamma = jax.nn.relu(
            _conv(gamma_features, params[name + "/kernel"], params[name + "/bias"])
        ).astype(jnp.float32) + o["gamma_floor"]
        u = reconstruct(image, v, gamma)
    return u, updates


def is_batch_norm(path):
    """Whether a weight path is a batch-norm layer's (scale, offset or statistics)."""
    return re.search(r"/bn\d+/", path) is not None


def split_weights(weights):
    """``(trainable, batch-norm statistics)`` of a flat weight dict."""
    stats = {k: v for k, v in weights.items() if k.endswith(("moving_mean", "moving_variance"))}
    params = {k: v for k, v in weights.items() if k not in stats}
    return params, stats
