"""Exact tiled inference for DeepAM: bounded memory, the same answer as one big call.

Per stage, the CNNs (aggregation, γ, guidance) run on overlapping tiles whose margin
covers their receptive field, ``v`` and ``γ`` are stitched from the tile cores, and the
reconstruction (a global solve, but cheap: a few full-size maps) runs once on the
whole image. Batch-norm is in inference mode, so nothing else couples pixels and the
stitched ``v`` and ``γ`` equal the untiled ones up to float rounding.
"""

import os
import weakref

import numpy as np

# Peak bytes per pixel of one CNN pass with 64 feature maps and batch 1 (graph mode,
# float32): a few live 64-map activations. Used only to pick an automatic tile size.
BYTES_PER_PIXEL_64_FEATURES = 1024
MAX_AUTO_TILE = 1024
MIN_TILE = 32
TILE_MEMORY_FRACTION = 8  # a tile may use 1/8 of the available memory ...
MAX_TILE_BYTES = 1 << 30  # ... and at most 1 GiB

# Full-image float32 maps alive during a stage, per image channel: the image, u, v (2),
# γ, and the PCG's right-hand side, iterate, residual, search direction, preconditioned
# residual, operator output and diagonal, with copies between numpy and TensorFlow.
FULL_IMAGE_MAPS_PER_CHANNEL = 20

_STAGE_FUNCTIONS = weakref.WeakKeyDictionary()
_SOLVE_FUNCTIONS = {}


def receptive_radius(model):
    """Pixels each side that one stage's ``v`` and ``γ`` depend on.

    ``v``: ``depth`` 3×3 convolutions (the residual gradients' forward difference, added
    at the end, reaches only one pixel); ``γ``: the features of layer ``gamma_layer`` and
    one more 3×3 convolution; guidance: ``guidance_depth`` convolutions fused after layer
    ``fusion_layer``. The test suite checks that one pixel less changes the result.
    """
    radius = max(model.depth, model.gamma_layer + 1)
    if model.guidance_channels:
        radius = max(radius, model.guidance_depth + model.depth - model.fusion_layer)
    return radius


def available_memory():
    """Bytes this process may still allocate: MemAvailable, capped by a cgroup limit."""
    available = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit():
            limit = int(text)
            if limit < (1 << 60):
                available = limit if available is None else min(available, limit)
    if available is None:
        pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
        available = pages * os.sysconf("SC_PAGE_SIZE") if pages > 0 else 4 << 30
    return available


def auto_tile_size(model, batch=1, memory=None):
    """Tile side (a multiple of 32) whose CNN pass fits in a fraction of ``memory``."""
    memory = available_memory() if memory is None else memory
    budget = min(memory // TILE_MEMORY_FRACTION, MAX_TILE_BYTES)
    per_pixel = BYTES_PER_PIXEL_64_FEATURES * max(1, batch) * model.features / 64
    side = int(np.sqrt(budget / per_pixel))
    return int(np.clip(side // 32 * 32, MIN_TILE, MAX_AUTO_TILE))


def check_memory(model, batch, height, width, memory=None):
    """ValueError naming the sizes when the whole-image maps of the reconstruction
    cannot fit in the available memory (the CNN part is tiled, the solve is not)."""
    memory = available_memory() if memory is None else memory
    need = FULL_IMAGE_MAPS_PER_CHANNEL * 4 * batch * height * width * (model.channels + model.guidance_channels)
    if need > memory:
        raise ValueError(
            f"a {batch}x{height}x{width} input ({batch * height * width / 1e6:.0f} MP) needs "
            f"about {need / 2**30:.1f} GiB for the whole-image reconstruction, but only "
            f"{memory / 2**30:.1f} GiB is available; split the image or use a larger machine"
        )


def tile_grid(height, width, tile_size, margin):
    """``[(core, window)]`` covering the image: ``core`` = ``(y0, y1, x0, x1)`` tiles
    the image without overlap, ``window`` is the core grown by ``margin`` (clipped to the
    image), and ``window``-relative core offsets are ``core - window[0::2]``."""
    tiles = []
    for y0 in range(0, height, tile_size):
        for x0 in range(0, width, tile_size):
            y1, x1 = min(y0 + tile_size, height), min(x0 + tile_size, width)
            window = (max(y0 - margin, 0), min(y1 + margin, height),
                      max(x0 - margin, 0), min(x1 + margin, width))
            tiles.append(((y0, y1, x0, x1), window))
    return tiles


class _StageCNN:
    """Stage k's CNNs: ``u, guidance, noise_level -> v, γ`` (float32)."""

    def __init__(self, model, k):
        self.aggregation = model.get_layer(f"stage{k}_aggregation")
        self.gamma_net = model.get_layer(f"stage{k}_gamma")
        self.guidance_net = model.get_layer(f"stage{k}_guidance") if model.guidance_channels else None
        self.noise_map = model.get_layer("noise_level_map") if model.noise_level_input else None

    def __call__(self, u, guidance, level):
        import tensorflow as tf

        features = self.guidance_net(guidance) if self.guidance_net is not None else None
        conditioning = self.noise_map(u, level) if self.noise_map is not None else None
        v, gamma_features = self.aggregation(
            u, guidance_features=features, conditioning=conditioning, training=False
        )
        return tf.cast(v, tf.float32), tf.cast(self.gamma_net(gamma_features), tf.float32)


def _solve_function(layer, channels):
    """The traced reconstruction ``f, v, γ -> u`` of a :class:`Reconstruction` layer's
    solver options. The layer has no weights, so every stage of every model with the same
    options and channel count shares one trace (each would take about half a second)."""
    import tensorflow as tf

    from deepam_tf.layers import Reconstruction

    options = {k: getattr(layer, k) for k in ("iterations", "tolerance", "preconditioner", "unrolled")}
    key = (channels, *sorted(options.items()))
    if key not in _SOLVE_FUNCTIONS:
        image_spec = tf.TensorSpec([None, None, None, channels], tf.float32)
        v_spec = tf.TensorSpec([None, None, None, 2 * channels], tf.float32)
        _SOLVE_FUNCTIONS[key] = tf.function(Reconstruction(**options), autograph=False,
                                            input_signature=[image_spec, v_spec, image_spec])
    return _SOLVE_FUNCTIONS[key]


def _stage_functions(model):
    """Traced per-stage CNN and reconstruction, with unknown batch and spatial sizes so
    tiles of every shape share one trace. Each CNN is a callable object, not a closure:
    TensorFlow counts traces per Python code object and warns of "excessive retracing"
    when closures of several models and stages, each traced once, add up."""
    import tensorflow as tf

    if model in _STAGE_FUNCTIONS:
        return _STAGE_FUNCTIONS[model]
    c, g = model.channels, model.guidance_channels
    image_spec = tf.TensorSpec([None, None, None, c], tf.float32)
    guidance_spec = tf.TensorSpec([None, None, None, max(g, 1)], tf.float32)
    level_spec = tf.TensorSpec([None, 1], tf.float32)
    functions = [
        (tf.function(_StageCNN(model, k), input_signature=[image_spec, guidance_spec, level_spec],
                     autograph=False),
         _solve_function(model.get_layer(f"stage{k}_reconstruction"), c))
        for k in range(1, model.stages + 1)
    ]
    _STAGE_FUNCTIONS[model] = functions
    return functions


def _as_arrays(model, inputs, memory):
    """The model's input (tensor or dict) as float32 numpy: image, guidance, level;
    shapes and memory are checked before anything is copied."""
    model._check_inputs(inputs)
    named = inputs if isinstance(inputs, dict) else {"image": inputs}
    batch, height, width = tuple(named["image"].shape)[:3]
    check_memory(model, batch, height, width, memory)
    image = np.asarray(named["image"], np.float32)
    guidance = named.get("guidance")
    guidance = (np.zeros((batch, height, width, 1), np.float32) if guidance is None
                else np.asarray(guidance, np.float32))
    level = named.get("noise_level")
    level = np.zeros((batch, 1), np.float32) if level is None else np.asarray(level, np.float32)
    return image, guidance, level


def tiled_predict(model, inputs, tile_size="auto"):
    """Runs ``model`` on ``inputs`` tile by tile; equal to ``model(inputs)`` up to float
    rounding, with CNN memory bounded by the tile size.

    Args:
        model: a :class:`DeepAM`.
        inputs: what the model takes (array ``[B, H, W, C]`` or dict of arrays).
        tile_size: side of the tile cores in pixels, or ``"auto"`` (from the available
            memory, at most 1024). Each tile is grown by :func:`receptive_radius`.

    Returns:
        float32 numpy array ``[B, H, W, C]``.
    """
    memory = available_memory()
    image, guidance, level = _as_arrays(model, inputs, memory)
    batch, height, width = image.shape[:3]
    if tile_size == "auto":
        tile_size = auto_tile_size(model, batch, memory)
    if isinstance(tile_size, bool) or not isinstance(tile_size, (int, np.integer)) or tile_size < 2:
        raise ValueError(f"tile_size must be an integer >= 2, 'auto' or None (whole image), got {tile_size!r}")
    margin = receptive_radius(model)
    tiles = tile_grid(height, width, int(tile_size), margin)
    u = image
    v = np.empty((batch, height, width, 2 * model.channels), np.float32)
    gamma = np.empty((batch, height, width, model.channels), np.float32)
    for cnn, solve in _stage_functions(model):
        for (y0, y1, x0, x1), (wy0, wy1, wx0, wx1) in tiles:
            v_tile, gamma_tile = cnn(
                u[:, wy0:wy1, wx0:wx1], guidance[:, wy0:wy1, wx0:wx1], level
            )
            core = (slice(None), slice(y0 - wy0, y1 - wy0), slice(x0 - wx0, x1 - wx0))
            v[:, y0:y1, x0:x1] = v_tile.numpy()[core]
            gamma[:, y0:y1, x0:x1] = gamma_tile.numpy()[core]
        u = solve(image, v, gamma).numpy()
    return u
