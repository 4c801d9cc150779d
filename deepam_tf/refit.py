"""Refitting the head of DeepAM's last stage under mean squared error (or minus the mean
PSNR), on cached features.

The head is every weight downstream of the features ``h`` of one hidden layer of the last
stage's aggregation network: its layers ``first_layer … depth`` and the γ network (by
default ``first_layer = gamma_layer + 1``, so ``h`` holds the γ-layer features). Given
``h``, the image ``f`` and ``D u_{K-1}`` (the residual gradients), the output is

    u_K = (Γ(h) + DᵀD)⁻¹ (Γ(h) f + Dᵀ(net(h) + D u_{K-1})),

so the network before ``h`` runs once per training image (:func:`head_inputs`), and the
fit (:func:`refit_head`, ``model.fit`` on :func:`head_model`) costs the head's convolution
layers and the two solves per step instead of the whole cascade. Mean squared error, not
the training L1, is the loss: it is what PSNR measures. Every other weight, and every
batch-norm statistic, stays as it was.
"""

import logging
import math
import os

import keras
import numpy as np

from deepam_tf.data import read_image_checked
from deepam_tf.ops import differences
from deepam_tf.restore import MAX_SIGMA, check_sigma

logger = logging.getLogger("deepam_tf")
# Below this noise level (0–255 scale) the PSNR loss, which weighs each image by 1 / its
# error, is dominated by the nearly noise-free images.
PSNR_LOSS_MIN_SIGMA = 1


def _last_stage(model):
    k = model.stages
    return (model.get_layer(f"stage{k}_aggregation"), model.get_layer(f"stage{k}_gamma"),
            model.get_layer(f"stage{k}_reconstruction"))


def _first_layer(model, first_layer):
    """``first_layer`` checked, ``None`` meaning the layer after the γ features."""
    if first_layer is None:
        first_layer = model.gamma_layer + 1
    if not 2 <= first_layer <= model.gamma_layer + 1:
        raise ValueError(f"first_layer must be in [2, gamma_layer + 1 = {model.gamma_layer + 1}], "
                         f"got {first_layer}")
    if model.guidance_channels and model.fusion_layer >= first_layer:
        raise ValueError(f"the guidance fusion (after layer {model.fusion_layer}) lies inside the "
                         f"head (first_layer {first_layer})")
    return first_layer


class _InferenceNorm(keras.layers.Layer):
    """A batch-norm layer run in inference mode whatever the training flag. A functional
    model passes its own flag to every layer whose call takes one, over the
    ``training=False`` it was built with; this call takes none. Its scale and offset are
    fitted unless the layer is frozen; its statistics never change."""

    def __init__(self, norm, **kwargs):
        super().__init__(**kwargs)
        self.norm = norm

    def call(self, x):
        return self.norm(x, training=False)


def _hidden_layers(aggregation, x, first, last, guidance_features=None):
    """Hidden layers ``first … last`` (1-based) of ``aggregation`` on ``x``, batch norm in
    inference mode, as :meth:`AggregationNetwork.call` runs them; their features by layer."""
    features = {}
    for i in range(first - 1, last):
        x = keras.ops.relu(_InferenceNorm(aggregation.norms[i])(aggregation.convs[i](x)))
        if i + 1 == aggregation.fusion_layer and guidance_features is not None:
            x = keras.ops.concatenate([x, keras.ops.cast(guidance_features, x.dtype)], axis=-1)
        features[i + 1] = x
    return features


def head_model(model, first_layer=None):
    """A Keras model ``{"image", "gradient", "features"} -> u_K`` made of the last stage's
    head layers of ``model`` (shared: fitting it changes ``model``); ``"gradient"`` is
    ``D u_{K-1}`` and ``"features"`` those of layer ``first_layer - 1``, as
    :func:`head_inputs` gives them. Batch norm runs in inference mode."""
    first_layer = _first_layer(model, first_layer)
    aggregation, gamma_network, reconstruction = _last_stage(model)
    image = keras.Input((None, None, model.channels), name="image")
    gradient = keras.Input((None, None, 2 * model.channels), name="gradient")
    channels = aggregation.convs[first_layer - 1].kernel.shape[2]
    features = keras.Input((None, None, channels), name="features")
    hidden = {first_layer - 1: features}
    hidden.update(_hidden_layers(aggregation, features, first_layer, model.depth - 1))
    v = keras.ops.cast(aggregation.convs[-1](hidden[model.depth - 1]), gradient.dtype)
    if model.residual_gradients:
        v = v + gradient
    u = reconstruction(image, v, gamma_network(hidden[model.gamma_layer]))
    return keras.Model({"image": image, "gradient": gradient, "features": features}, u,
                       name=f"{model.name}_head")


def head_inputs(model, inputs, first_layer=None, batch_size=8):
    """The inputs of :func:`head_model` for ``inputs`` (what ``model`` takes: the images
    ``[N, H, W, C]``, or a dict with the noise level / guidance), as numpy arrays."""
    first_layer = _first_layer(model, first_layer)
    aggregation, _, _ = _last_stage(model)
    k = model.stages
    previous = model.get_layer(f"stage{k - 1}_reconstruction" if k > 1 else "image").output
    x = previous
    if model.noise_level_input:
        noise_map = model.get_layer("noise_level_map").output
        x = keras.ops.concatenate([x, keras.ops.cast(noise_map, x.dtype)], axis=-1)
    guidance = model.get_layer(f"stage{k}_guidance").output if model.guidance_channels else None
    features = _hidden_layers(aggregation, x, 1, first_layer - 1, guidance)[first_layer - 1]
    extractor = keras.Model(model.input, [previous, features])
    named = inputs if isinstance(inputs, dict) else {"image": inputs}
    image = np.asarray(named["image"], np.float32)
    if len(image) == 0:
        raise ValueError("no images to cache the head's inputs of")
    cached = None
    # Filled batch by batch: the features of a few hundred images take gigabytes.
    for start in range(0, len(image), batch_size):
        batch = {name: value[start: start + batch_size] for name, value in named.items()}
        before, features = extractor.predict_on_batch(batch if isinstance(inputs, dict) else batch["image"])
        if cached is None:
            cached = {"image": image,
                      "gradient": np.empty(image.shape[:-1] + (2 * image.shape[-1],), np.float32),
                      "features": np.empty(image.shape[:-1] + features.shape[-1:], np.float32)}
        cached["gradient"][start: start + len(before)] = differences.gradient(before).numpy()
        cached["features"][start: start + len(before)] = features
    return cached


class _Batches(keras.utils.PyDataset):
    """Shuffled batches of the cached head inputs, sliced from the arrays without copying
    them whole (as ``fit`` on the arrays would); a new order each epoch from ``seed``."""

    def __init__(self, cached, targets, batch_size, seed):
        super().__init__()
        self.cached, self.targets, self.batch_size = cached, targets, batch_size
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        return math.ceil(len(self.targets) / self.batch_size)

    def __getitem__(self, index):
        chosen = np.sort(self.order[index * self.batch_size: (index + 1) * self.batch_size])
        return {name: value[chosen] for name, value in self.cached.items()}, self.targets[chosen]

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.targets))


@keras.saving.register_keras_serializable(package="deepam_tf")
def negative_psnr(clean, restored):
    """``-PSNR`` of each image (data range 1) in dB: as a loss, the mean over a batch is
    minus the mean PSNR that the benchmarks report. Unlike the mean squared error, it
    weighs each image's error relative to its own size, as that mean does."""
    error = keras.ops.mean(keras.ops.square(restored - clean), axis=(1, 2, 3))
    return 10 * keras.ops.log(error) / math.log(10)


LOSSES = {"mse": "mse", "psnr": negative_psnr}


def refit_head(model, clean, sigma, *, first_layer=None, draws=1, loss="mse", epochs=35,
               batch_size=16, learning_rate=3e-4, seed=0, verbose=1):
    """Fits the last stage's head of the denoiser ``model`` to ``clean`` images
    ``[N, H, W, C]`` in [0, 1] (one size) with Gaussian noise of ``sigma`` (0–255 scale),
    or of a level drawn uniformly per noisy image from a range ``sigma = (low, high)``
    (noise-level-conditioned models); ``draws`` draws per image, in turn from
    ``default_rng(seed)``. The loss is mean squared error (``loss="mse"``) or minus the
    mean PSNR (``"psnr"``, :func:`negative_psnr`); Adam, cosine decay to 1% over the run;
    an epoch passes each noisy image once.
    ``first_layer``: the first aggregation layer refitted (default: the one after the γ
    features). Changes ``model`` in place; returns the History."""
    clean = np.asarray(clean, np.float32)
    if clean.ndim != 4 or clean.shape[-1] != model.channels:
        raise ValueError(f"clean must have shape [N, H, W, {model.channels}], got {clean.shape}")
    if clean.shape[0] < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} images, got {clean.shape[0]}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) \
            or not 0 < learning_rate < np.inf:
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    check_denoiser(model)
    rng = np.random.default_rng(seed)
    # A range's levels are drawn first, so one σ leaves the noise as it was.
    levels = _noise_levels(model, sigma, len(clean) * draws, rng)
    if loss == "psnr" and np.min(sigma) < PSNR_LOSS_MIN_SIGMA:
        logger.warning("the PSNR loss weighs each image by 1 / its error: images with noise "
                       "levels below %g (down to %g here) will dominate the fit; a range from "
                       "%g or more is safer", PSNR_LOSS_MIN_SIGMA, np.min(sigma), PSNR_LOSS_MIN_SIGMA)
    targets = np.concatenate([clean] * draws)
    noisy = np.concatenate([clean + rng.normal(0, scale / 255, clean.shape).astype(np.float32)
                            for scale in levels.reshape(draws, -1, 1, 1, 1)])
    inputs = noisy
    if model.noise_level_input:
        inputs = {"image": noisy, "noise_level": (levels.reshape(-1, 1) / 255).astype(np.float32)}
    batches = _Batches(head_inputs(model, inputs, first_layer), targets, batch_size, seed)
    head = head_model(model, first_layer)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * len(batches),
                                                      alpha=0.01)
    head.compile(keras.optimizers.Adam(schedule), loss=LOSSES[loss])
    return head.fit(batches, epochs=epochs, verbose=verbose)


def check_denoiser(model):
    """ValueError unless ``model`` is a denoiser (takes no guidance image)."""
    if model.guidance_channels:
        raise ValueError(f"{model.name} takes a guidance image; refit_head fits denoisers")


def _noise_levels(model, sigma, count, rng):
    """``count`` noise levels: ``sigma`` each time, or for a range ``(low, high)`` drawn
    uniformly from it."""
    if np.ndim(sigma) == 0:
        return np.full(count, check_sigma(sigma))
    bounds = np.asarray(sigma, np.float64).ravel()
    if bounds.size != 2 or not 0 <= bounds[0] < bounds[1] <= MAX_SIGMA:
        raise ValueError(f"a sigma range must be (low, high) with 0 <= low < high <= "
                         f"{MAX_SIGMA:g}, got {tuple(bounds.tolist())}")
    low, high = bounds
    if not model.noise_level_input:
        raise ValueError("a sigma range needs a noise-level-conditioned model; this one "
                         "takes no noise level")
    return rng.uniform(low, high, count)


def read_images(paths, channels=1):
    """Training images as one float32 array ``[N, H, W, channels]`` in [0, 1]; they must
    share one size (the head is fitted on whole images, solved as they are at inference)."""
    images = [read_image_checked(path, channels).numpy() for path in map(os.fspath, paths)]
    sizes = sorted({image.shape[:2] for image in images})
    if len(sizes) > 1:
        raise ValueError(f"training images must share one size; found {len(sizes)} sizes "
                         f"({', '.join('x'.join(map(str, size)) for size in sizes[:4])}, ...)")
    return np.stack(images)
