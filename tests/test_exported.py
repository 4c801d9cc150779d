"""The ready-to-serve copies in exported/ match the package's presets: a test that fails
when a preset is retrained and exported/ is not refreshed (``python -m
deepam_tf.export.release exported``; see exported/README.md)."""

import json
import os

import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from deepam_tf.export import tflite
from deepam_tf.models import list_presets, load_preset

EXPORTED = os.path.join(os.path.dirname(__file__), "..", "exported")
MANIFEST = os.path.join(EXPORTED, "manifest.json")


def _manifest():
    with open(MANIFEST) as handle:
        return json.load(handle)


def test_the_release_is_exported():
    from deepam_tf.export.release import SAVED_MODELS
    from deepam_tf.restore import blind_routes

    manifest = _manifest()
    assert set(manifest["tflite"]) == {name for name, info in list_presets().items() if info.get("released")}
    assert set(manifest["saved_model"]) == set(SAVED_MODELS)
    for name, task in SAVED_MODELS.items():
        assert [tuple(band) for band in manifest["saved_model"][name]["bands"]] == blind_routes(task)


def _inputs(model, size, seed=0, sigma=25.0):
    rng = np.random.default_rng(seed)
    feeds = {"image": rng.uniform(0, 1, (1,) + size + (model.channels,)).astype(np.float32)}
    if model.guidance_channels:
        feeds["guidance"] = rng.uniform(0, 1, (1,) + size + (model.guidance_channels,)).astype(np.float32)
    if model.noise_level_input:
        feeds["noise_level"] = np.full((1, 1), sigma / 255, np.float32)
    return feeds


def _entries(kind):
    return sorted(_manifest()[kind]) if os.path.exists(MANIFEST) else []


def _band_sigmas(bands):
    """A σ inside each band, below its top."""
    low = 0.0
    for top, _ in bands:
        yield (low + min(top, low + 60.0)) / 2
        low = top


@pytest.mark.parametrize("name", _entries("saved_model"))
def test_saved_model_serves_each_sigma_by_the_preset_of_its_band(name):
    entry = _manifest()["saved_model"][name]
    loaded = tf.saved_model.load(os.path.join(EXPORTED, entry["path"]), tags=["serve"])
    sigmas = list(_band_sigmas(entry["bands"]))
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (len(sigmas), 48, 40, 1)).astype(np.float32)
    got = loaded.signatures["serving_default"](image=tf.constant(image), sigma=tf.constant(sigmas, tf.float32))
    for i, (sigma, (_, preset)) in enumerate(zip(sigmas, entry["bands"])):
        model = load_preset(preset)
        want = np.asarray(model({"image": image[i:i + 1], "noise_level": np.full((1, 1), sigma / 255, np.float32)},
                                training=False))
        assert np.max(np.abs(got["restored"].numpy()[i:i + 1] - want)) <= 1e-5, (preset, sigma)


@pytest.mark.parametrize("name", _entries("saved_model"))
def test_saved_model_encoded_signature_matches_denoise(name, tmp_path):
    # What deepam_tf.denoise's default (model="auto") gives, at levels no fixed-σ specialist
    # serves: PNG gray and colour, JPEG colour (which the signature denoises R, G, B, as
    # denoise's "auto" does for JPEG noise) at σ = 20; at 70, gray by the high-σ preset and
    # RGB by the preset of its noisiest opponent channel's σ (49.5: the blind one); RGB at 90
    # (63.6: the high-σ one); a phone photo's EXIF orientation and a 16-bit PNG (read as deepam denoise reads the
    # file). A copy exported before a change to the signature or the routing fails here.
    import io

    from PIL import Image

    from deepam_tf import denoise, image_io

    entry = _manifest()["saved_model"][name]
    loaded = tf.saved_model.load(os.path.join(EXPORTED, entry["path"]), tags=["serve"])
    rng = np.random.default_rng(0)
    gray = skimage.data.camera()[100:140, 100:148]
    rgb = skimage.data.astronaut()[100:140, 100:148]
    probes = []
    for clean, encode, sigmas in ((gray[..., None], tf.io.encode_png, (20.0, 70.0)),
                                  (rgb, tf.io.encode_png, (20.0, 70.0, 90.0)),
                                  (rgb, lambda x: tf.io.encode_jpeg(x, quality=90), (20.0,))):
        for sigma in sigmas:
            noisy = np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 255).astype(np.uint8)
            probes.append((encode(noisy), sigma))
    for data, sigma in probes:
        served = loaded.signatures["encoded"](image_bytes=tf.stack([data]), sigma=tf.constant([sigma]))
        got = tf.io.decode_png(served["png_bytes"][0]).numpy().astype(int)
        image = tf.io.decode_image(data).numpy()
        want = denoise(image[..., 0] if image.shape[-1] == 1 else image, sigma)
        assert np.abs(got - want.reshape(got.shape).astype(int)).max() <= 1, sigma
    exif = Image.Exif()
    exif[image_io.EXIF_ORIENTATION] = 8
    buffer = io.BytesIO()
    Image.fromarray(tf.io.decode_png(probes[0][0]).numpy()[..., 0]).save(buffer, "PNG", exif=exif.tobytes())
    (tmp_path / "photo.png").write_bytes(buffer.getvalue())
    deep = (tf.io.decode_png(probes[0][0]).numpy().astype(np.uint16) * 257
            + rng.integers(0, 257, (40, 48, 1), dtype=np.uint16))
    (tmp_path / "deep.png").write_bytes(tf.io.encode_png(deep).numpy())
    for file, depth in (("photo.png", tf.uint8), ("deep.png", tf.uint16)):
        data = (tmp_path / file).read_bytes()
        served = loaded.signatures["encoded"](image_bytes=tf.constant([data]), sigma=tf.constant([20.0]))
        got = tf.io.decode_png(served["png_bytes"][0], dtype=depth).numpy()[..., 0].astype(int)
        want = denoise(image_io.read_image_file(str(tmp_path / file)), 20.0)
        assert got.shape == want.shape and np.abs(got - want.astype(int)).max() <= (1 if depth == tf.uint8 else 2)


@pytest.mark.parametrize("name", _entries("tflite"))
def test_tflite_matches_the_preset(name):
    from ai_edge_litert.interpreter import Interpreter

    entry = _manifest()["tflite"][name]
    model = load_preset(name)
    size = tuple(entry["size"])
    # A noise level the preset serves: the middle of its training range, or its fixed σ.
    info = list_presets()[name]
    sigma = float(np.mean(info.get("sigma_range") or [info.get("sigma", 25.0)]))
    feeds = _inputs(model, size, sigma=sigma)
    static = tflite.static_copy(model, entry["iterations"], entry["preconditioner"])
    want = np.asarray(static(feeds if len(feeds) > 1 else feeds["image"], training=False))
    # On a natural image, the fixed-iteration solve is also within 0.5/255 of the preset's
    # own converged one (Jacobi with 30 iterations is not: 0.93/255 at σ=25 here).
    camera = skimage.data.camera()[128: 128 + size[0], 128: 128 + size[1]].astype(np.float32) / 255
    noisy = camera + np.random.default_rng(0).normal(0, sigma / 255, camera.shape).astype(np.float32)
    natural = dict(feeds, image=np.repeat(noisy[None, :, :, None], model.channels, axis=-1))
    natural = natural if len(natural) > 1 else natural["image"]
    gap = np.abs(np.asarray(static(natural, training=False)) - np.asarray(model(natural, training=False)))
    assert gap.max() <= 0.5 / 255
    interpreter = Interpreter(model_path=os.path.join(EXPORTED, entry["path"]))
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], next(v for k, v in feeds.items() if k in detail["name"]))
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert np.max(np.abs(got - want)) <= 1e-4

