"""Refitting the head of DeepAM's last stage under mean squared error, on cached features.

The head is every weight downstream of the last stage's γ-layer features ``h``: the
aggregation network's layers ``gamma_layer + 1 … depth`` and the γ network. Given ``h``,
the image ``f`` and ``D u_{K-1}`` (the residual gradients), the output is

    u_K = (Γ(h) + DᵀD)⁻¹ (Γ(h) f + Dᵀ(net(h) + D u_{K-1})),

so the network before ``h`` runs once per training image (:func:`head_inputs`), and the
fit (:func:`refit_head`, ``model.fit`` on :func:`head_model`) costs two convolution layers
and the two solves per step instead of the whole cascade. Mean squared error, not the
training L1, is the loss: it is what PSNR measures. Every other weight, and every
batch-norm statistic, stays as it was.
"""

import math
import os

import keras
import numpy as np
import tensorflow as tf

from deepam_tf.data import read_image
from deepam_tf.ops import differences


def _last_stage(model):
    k = model.stages
    return (model.get_layer(f"stage{k}_aggregation"), model.get_layer(f"stage{k}_gamma"),
            model.get_layer(f"stage{k}_reconstruction"))


def head_model(model):
    """A Keras model ``{"image", "gradient", "features"} -> u_K`` made of the last stage's
    head layers of ``model`` (shared: fitting it changes ``model``); ``"gradient"`` is
    ``D u_{K-1}`` and ``"features"`` the γ-layer features, as :func:`head_inputs` gives them.
    Batch norm runs in inference mode."""
    if model.guidance_channels and model.fusion_layer > model.gamma_layer:
        raise ValueError("the guidance fusion lies inside the head (fusion_layer > gamma_layer)")
    aggregation, gamma_network, reconstruction = _last_stage(model)
    layer = model.gamma_layer
    image = keras.Input((None, None, model.channels), name="image")
    gradient = keras.Input((None, None, 2 * model.channels), name="gradient")
    features = keras.Input((None, None, aggregation.convs[layer].kernel.shape[2]), name="features")
    x = features
    for conv, norm in zip(aggregation.convs[layer:-1], aggregation.norms[layer:]):
        x = keras.ops.relu(norm(conv(x), training=False))
    v = aggregation.convs[-1](x)
    if model.residual_gradients:
        v = v + gradient
    u = reconstruction(image, v, gamma_network(features))
    return keras.Model({"image": image, "gradient": gradient, "features": features}, u,
                       name=f"{model.name}_head")


def head_inputs(model, inputs, batch_size=8):
    """The inputs of :func:`head_model` for ``inputs`` (what ``model`` takes: the images
    ``[N, H, W, C]``, or a dict with the noise level / guidance), as numpy arrays."""
    aggregation, _, _ = _last_stage(model)
    k = model.stages
    previous = model.get_layer(f"stage{k - 1}_reconstruction" if k > 1 else "image").output
    extractor = keras.Model(model.input, [previous, aggregation.output[1]])
    before, features = extractor.predict(inputs, batch_size=batch_size, verbose=0)
    image = inputs["image"] if isinstance(inputs, dict) else inputs
    return {"image": np.asarray(image, np.float32),
            "gradient": differences.gradient(before).numpy(), "features": features}


def refit_head(model, clean, sigma, *, epochs=35, batch_size=16, learning_rate=3e-4, seed=0,
               verbose=1):
    """Fits the last stage's head of the denoiser ``model`` to ``clean`` images
    ``[N, H, W, C]`` in [0, 1] (one size) with Gaussian noise of ``sigma`` (0–255 scale;
    one draw per image from ``default_rng(seed)``), under mean squared error: Adam,
    cosine decay to 1% over the run. Changes ``model`` in place; returns the History."""
    clean = np.asarray(clean, np.float32)
    if clean.ndim != 4 or clean.shape[-1] != model.channels:
        raise ValueError(f"clean must have shape [N, H, W, {model.channels}], got {clean.shape}")
    if clean.shape[0] < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} images, got {clean.shape[0]}")
    if model.guidance_channels:
        raise ValueError("refit_head fits denoisers; this model takes a guidance image")
    noisy = clean + np.random.default_rng(seed).normal(0, sigma / 255, clean.shape).astype(np.float32)
    inputs = noisy
    if model.noise_level_input:
        inputs = {"image": noisy, "noise_level": np.full((len(noisy), 1), sigma / 255, np.float32)}
    cached = head_inputs(model, inputs)
    head = head_model(model)
    steps = epochs * math.ceil(len(clean) / batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.01)
    head.compile(keras.optimizers.Adam(schedule), loss="mse")
    keras.utils.set_random_seed(seed)
    return head.fit(cached, clean, batch_size=batch_size, epochs=epochs, verbose=verbose,
                    shuffle=True)


def read_images(paths, channels=1):
    """Training images as one float32 array ``[N, H, W, channels]`` in [0, 1]; they must
    share one size (the head is fitted on whole images, solved as they are at inference)."""
    images = []
    for path in map(os.fspath, paths):
        try:
            images.append(read_image(path, channels).numpy())
        except tf.errors.OpError as error:
            raise ValueError(f"{path}: not a readable image ({error.message})") from None
    sizes = sorted({image.shape[:2] for image in images})
    if len(sizes) > 1:
        raise ValueError(f"training images must share one size; found {len(sizes)} sizes "
                         f"({', '.join('x'.join(map(str, size)) for size in sizes[:4])}, ...)")
    return np.stack(images)
