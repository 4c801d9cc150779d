import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from deepam_tf import DeepAM
from deepam_tf.export import export_saved_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras_model = DeepAM(stages=2, features=8, depth=4, gamma_layer=3, fusion_layer=2,
                         noise_level_input=True, residual_gradients=False)
    path = export_saved_model(keras_model, str(tmp_path_factory.mktemp("serving")), "denoise", 1)
    return keras_model, path, tf.saved_model.load(path, tags=["serve"])


def test_layout_is_what_tf_serving_serves(exported):
    _, path, _ = exported
    assert path.endswith("denoise/1")
    with pytest.raises(FileExistsError):
        export_saved_model(exported[0], path.rsplit("/denoise", 1)[0], "denoise", 1)


def test_float_signature_matches_keras_on_481x321(exported):
    keras_model, _, loaded = exported
    x = np.random.default_rng(0).random((1, 321, 481, 1)).astype(np.float32)
    out = loaded.signatures["serving_default"](image=tf.constant(x), sigma=tf.constant([25.0]))
    assert list(out) == ["restored"]
    want = keras_model({"image": x, "noise_level": np.full((1, 1), 25 / 255, np.float32)})
    assert np.abs(out["restored"].numpy() - np.asarray(want)).max() <= 1e-5


def test_png_signature_matches_float_signature_within_rounding(exported):
    _, _, loaded = exported
    pixels = (np.random.default_rng(1).random((2, 20, 30, 1)) * 255).round().astype(np.uint8)
    encoded = tf.stack([tf.io.encode_png(p) for p in pixels])
    out = loaded.signatures["encoded"](image_bytes=encoded, sigma=tf.constant([25.0, 50.0]))["png_bytes"]
    floats = loaded.signatures["serving_default"](
        image=tf.constant(pixels / 255.0, tf.float32), sigma=tf.constant([25.0, 50.0]))["restored"]
    for png, ref in zip(out.numpy(), floats.numpy()):
        decoded = tf.io.decode_png(png).numpy() / 255.0
        assert np.abs(decoded - np.clip(ref, 0, 1)).max() <= 0.5 / 255 + 1e-6


def test_png_signature_denoises_colour_and_keeps_alpha_as_denoise_does(exported):
    # The untrained test model is not the identity, so the comparison with
    # deepam_tf.denoise (the opponent colour space, alpha left alone) is a real one.
    import skimage.data

    from deepam_tf import denoise

    keras_model, _, loaded = exported
    rgb = skimage.data.astronaut()[100:124, 200:236]
    alpha = np.random.default_rng(2).integers(0, 256, rgb.shape[:2] + (1,), dtype=np.uint8)
    for pixels in (rgb, np.concatenate([rgb, alpha], -1), rgb[..., :1], np.concatenate([rgb[..., :1], alpha], -1)):
        out = loaded.signatures["encoded"](image_bytes=tf.stack([tf.io.encode_png(pixels)]),
                                           sigma=tf.constant([30.0]))["png_bytes"]
        decoded = tf.io.decode_png(out.numpy()[0]).numpy()
        colours = 3 if pixels.shape[-1] >= 3 else 1
        want = denoise(pixels[..., :colours] if colours == 3 else pixels[..., 0], 30, model=keras_model,
                       colour_space="opponent")
        want = want.reshape(pixels.shape[:2] + (colours,))
        assert decoded.shape == pixels.shape
        assert np.abs(decoded[..., :colours].astype(int) - want.astype(int)).max() <= 1
        np.testing.assert_array_equal(decoded[..., colours:], pixels[..., colours:])
    assert np.abs(decoded[..., :1].astype(int) - pixels[..., :1].astype(int)).max() > 1  # it did denoise
    # JPEG bytes (chroma noise removed by the format): R, G and B one by one.
    jpeg = tf.io.encode_jpeg(rgb, quality=95)
    out = loaded.signatures["encoded"](image_bytes=tf.stack([jpeg]), sigma=tf.constant([30.0]))["png_bytes"]
    decoded = tf.io.decode_png(out.numpy()[0]).numpy()
    want = denoise(tf.io.decode_jpeg(jpeg).numpy(), 30, model=keras_model, colour_space="rgb")
    assert np.abs(decoded.astype(int) - want.astype(int)).max() <= 1


def test_png_signature_returns_phone_photos_upright_and_16_bit_pngs_in_16_bits(exported, tmp_path):
    # As deepam denoise reads files: the EXIF orientation applied (a PNG eXIf chunk against
    # image_io exactly; a JPEG APP1 segment against TF's own JPEG decoder, turned), and
    # 16 bits answered in 16 bits.
    import io

    import skimage.data
    from PIL import Image

    from deepam_tf import denoise, image_io

    keras_model, _, loaded = exported
    signature = loaded.signatures["encoded"]
    gray = skimage.data.camera()[100:124, 200:236]
    exif = Image.Exif()
    exif[image_io.EXIF_ORIENTATION] = 6
    for fmt in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.fromarray(gray).save(buffer, fmt, exif=exif.tobytes())
        out = signature(image_bytes=tf.constant([buffer.getvalue()]), sigma=tf.constant([30.0]))["png_bytes"]
        got = tf.io.decode_png(out.numpy()[0]).numpy()[..., 0].astype(int)
        if fmt == "PNG":
            (tmp_path / "photo.png").write_bytes(buffer.getvalue())
            upright = image_io.read_image_file(str(tmp_path / "photo.png"))
        else:
            upright = image_io.UPRIGHT[6](tf.io.decode_jpeg(buffer.getvalue()).numpy()[..., 0])
        assert got.shape == (36, 24)
        want = denoise(upright, 30, model=keras_model).astype(int)
        assert np.abs(got - want).max() <= 1
    deep = (skimage.data.camera()[:20, :30].astype(np.uint16) * 257
            + np.random.default_rng(0).integers(0, 257, (20, 30), dtype=np.uint16))
    out = signature(image_bytes=tf.stack([tf.io.encode_png(deep[..., None])]), sigma=tf.constant([30.0]))
    got = tf.io.decode_png(out["png_bytes"].numpy()[0], dtype=tf.uint16).numpy()[..., 0]
    assert np.abs(got.astype(int) - denoise(deep, 30, model=keras_model).astype(int)).max() <= 2
    assert len(np.unique(got % 257)) > 1  # not 8-bit values scaled up


@pytest.mark.parametrize(
    "signature, kwargs, match",
    [
        ("serving_default", dict(image=tf.zeros([1, 8, 8, 3]), sigma=tf.constant([25.0])), "1 channels"),
        ("serving_default", dict(image=tf.zeros([1, 1, 8, 1]), sigma=tf.constant([25.0])), "2x2"),
        ("serving_default", dict(image=tf.zeros([2, 8, 8, 1]), sigma=tf.constant([25.0])), "one value per image"),
        ("encoded", dict(image_bytes=tf.constant([b"not an image"]), sigma=tf.constant([25.0])), "image format|decode"),
        ("serving_default", dict(image=tf.fill([1, 8, 8, 1], np.nan), sigma=tf.constant([25.0])), "image contains NaN or Inf"),
        ("serving_default", dict(image=tf.fill([1, 8, 8, 1], np.inf), sigma=tf.constant([25.0])), "image contains NaN or Inf"),
        ("serving_default", dict(image=tf.zeros([1, 8, 8, 1]), sigma=tf.constant([300.0])), r"sigma must be in \(0, 255\]"),
        ("serving_default", dict(image=tf.zeros([1, 8, 8, 1]), sigma=tf.constant([np.nan])), r"sigma must be in \(0, 255\]"),
        ("encoded", dict(image_bytes=tf.constant([b"not an image"]), sigma=tf.constant([0.0])), r"sigma must be in|decode"),
    ],
)
def test_bad_requests_fail_with_a_clear_error(exported, signature, kwargs, match):
    _, _, loaded = exported
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        loaded.signatures[signature](**kwargs)
    # The loaded model still serves after a bad request.
    ok = loaded.signatures["serving_default"](image=tf.zeros([1, 4, 4, 1]), sigma=tf.constant([25.0]))
    assert ok["restored"].shape == (1, 4, 4, 1)


def test_saved_model_cli_show_and_run(exported, tmp_path):
    _, path, _ = exported
    cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    shown = subprocess.run(cli + ["show", "--dir", path, "--all"], capture_output=True, text=True, check=True)
    assert "signature_def['serving_default']" in shown.stdout and "signature_def['encoded']" in shown.stdout
    assert "inputs['image']" in shown.stdout and "outputs['restored']" in shown.stdout
    restored = _saved_model_cli_run(path, np.full((1, 6, 7, 1), 0.5, np.float32), [25.0], tmp_path)
    assert restored.shape == (1, 6, 7, 1)


def _saved_model_cli_run(path, image, sigmas, work):
    """``restored`` of ``serving_default`` through ``saved_model_cli run``: the TF1 loader
    that TF-Serving's C++ server uses."""
    np.save(work / "x.npy", image)
    np.save(work / "s.npy", np.asarray(sigmas, np.float32))
    run = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "run", "--dir", path,
         "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", f"image={work / 'x.npy'};sigma={work / 's.npy'}", "--outdir", str(work / "out")],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return np.load(work / "out" / "restored.npy")


def test_export_command(tmp_path):
    from deepam_tf import cli

    model = tmp_path / "tiny.keras"
    DeepAM(stages=1, features=4, depth=3, gamma_layer=2, fusion_layer=1).save(model)
    assert cli.main(["export", str(model), "-o", str(tmp_path / "serving"), "--version", "3"]) == 0
    loaded = tf.saved_model.load(str(tmp_path / "serving" / "tiny" / "3"))
    assert loaded.signatures["serving_default"](image=tf.zeros([1, 5, 5, 1]))["restored"].shape == (1, 5, 5, 1)
    assert cli.main(["export", str(model), "-o", str(tmp_path / "serving"), "--version", "3"]) == 1


def test_grpc_predict_request_round_trip(exported):
    """A PredictRequest as a gRPC client builds it, turned into tensors the way the model
    server does (tf.make_ndarray), and the PredictResponse read back."""
    predict_pb2 = pytest.importorskip(
        "tensorflow_serving.apis.predict_pb2",
        reason="NO gRPC CHECK: pip install --no-deps tensorflow-serving-api (as .ci/run does)",
    )
    keras_model, _, loaded = exported
    pixels = (np.random.default_rng(2).random((1, 12, 10, 1)) * 255).round().astype(np.uint8)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "denoise"
    request.model_spec.signature_name = "serving_default"
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(pixels / 255.0, dtype=tf.float32))
    request.inputs["sigma"].CopyFrom(tf.make_tensor_proto([25.0], dtype=tf.float32))
    wire = predict_pb2.PredictRequest.FromString(request.SerializeToString())

    signature = loaded.signatures[wire.model_spec.signature_name]
    feeds = {k: tf.constant(tf.make_ndarray(v)) for k, v in wire.inputs.items()}
    response = predict_pb2.PredictResponse()
    for key, value in signature(**feeds).items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
    restored = tf.make_ndarray(predict_pb2.PredictResponse.FromString(response.SerializeToString()).outputs["restored"])
    want = keras_model({"image": pixels / 255.0, "noise_level": np.full((1, 1), 25 / 255)})
    np.testing.assert_allclose(restored, want, atol=1e-5)

    # The encoded signature: PNG bytes in (what REST's {"b64": ...} decodes to), PNG out.
    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = "encoded"
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([tf.io.encode_png(pixels[0]).numpy()]))
    request.inputs["sigma"].CopyFrom(tf.make_tensor_proto([25.0], dtype=tf.float32))
    feeds = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    png = loaded.signatures["encoded"](**feeds)["png_bytes"].numpy()[0]
    assert tf.io.decode_png(png).shape == (12, 10, 1)


def test_export_command_in_bfloat16_serves_the_bfloat16_model(tmp_path):
    from deepam_tf import cli, load_preset

    # Not the identity (as the shared untrained model is in both precisions): v comes
    # from the random last layer, which computes in bfloat16.
    model_path = str(tmp_path / "small.keras")
    keras.utils.set_random_seed(0)
    DeepAM(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2, noise_level_input=True,
           residual_gradients=False).save(model_path)
    assert cli.main(["export", model_path, "-o", str(tmp_path), "--precision", "bfloat16"]) == 0
    loaded = tf.saved_model.load(str(tmp_path / "small" / "1"))
    x = np.random.default_rng(0).random((1, 20, 24, 1)).astype(np.float32)
    served = loaded.signatures["serving_default"](image=tf.constant(x), sigma=tf.constant([25.0]))
    half = load_preset(model_path, dtype="mixed_bfloat16")
    want = half({"image": x, "noise_level": np.full((1, 1), 25 / 255, np.float32)})
    full = load_preset(model_path)({"image": x, "noise_level": np.full((1, 1), 25 / 255, np.float32)})
    # The graph may round a few bfloat16 products unlike the eager model (up to 2.4e-4 over
    # random weights on an AVX512-BF16 CPU), far less than bfloat16 differs from float32.
    to_half, to_full = (np.abs(served["restored"].numpy() - y).max() for y in (want, full))
    assert to_full > 1e-3 and to_half < to_full / 4, (to_half, to_full)
    assert cli.main(["export", model_path, "--format", "tflite", "-o", str(tmp_path / "l"),
                     "--precision", "bfloat16"]) == 1


def _small_conditioned(seed):
    keras.utils.set_random_seed(seed)
    return DeepAM(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2,
                  noise_level_input=True, residual_gradients=False)


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    """Two different models in one SavedModel: σ up to 40 to the first, above to the second."""
    low, high = _small_conditioned(1), _small_conditioned(2)
    path = export_saved_model(low, str(tmp_path_factory.mktemp("routed")), "routed", 1, [(40.0, high)])
    return low, high, path, tf.saved_model.load(path, tags=["serve"])


def _run(model, x, sigmas):
    return np.asarray(model({"image": x, "noise_level": np.asarray(sigmas, np.float32)[:, None] / 255},
                            training=False))


def test_routed_saved_model_serves_each_image_by_the_model_of_its_sigma(routed):
    low, high, _, loaded = routed
    x = np.random.default_rng(3).random((4, 18, 22, 1)).astype(np.float32)
    sigmas = np.array([70.0, 25.0, 40.0, 41.0], np.float32)  # 40 is the first band's top
    got = loaded.signatures["serving_default"](image=tf.constant(x), sigma=tf.constant(sigmas))["restored"].numpy()
    lows, highs = sigmas <= 40, sigmas > 40
    np.testing.assert_allclose(got[lows], _run(low, x[lows], sigmas[lows]), atol=1e-5)
    np.testing.assert_allclose(got[highs], _run(high, x[highs], sigmas[highs]), atol=1e-5)
    assert np.abs(got[highs] - _run(low, x[highs], sigmas[highs])).max() > 1e-3  # the models differ
    # A batch wholly in one band (the other model's part is empty).
    one = loaded.signatures["serving_default"](image=tf.constant(x[:1]), sigma=tf.constant([90.0]))["restored"]
    np.testing.assert_allclose(one.numpy(), _run(high, x[:1], [90.0]), atol=1e-5)


def test_routed_encoded_signature_takes_the_model_of_the_noisiest_opponent_channel(routed):
    # deepam_tf.denoise's "auto" picks one blind model for an RGB image by the σ of its
    # noisiest opponent channel, sigma * max(NOISE_SCALE): here 35.4 <= 40 for RGB, while
    # gray at the same sigma goes above.
    import skimage.data

    from deepam_tf import colour, denoise

    low, high, _, loaded = routed
    sigma = 50.0
    assert sigma * colour.NOISE_SCALE.max() <= 40 < sigma
    rgb = skimage.data.astronaut()[100:124, 200:236]
    for pixels, model in ((rgb, low), (rgb[..., :1], high)):
        out = loaded.signatures["encoded"](image_bytes=tf.stack([tf.io.encode_png(pixels)]),
                                           sigma=tf.constant([sigma]))["png_bytes"]
        decoded = tf.io.decode_png(out.numpy()[0]).numpy().astype(int)
        want = denoise(pixels if pixels.shape[-1] == 3 else pixels[..., 0], sigma, model=model,
                       colour_space="opponent").reshape(decoded.shape).astype(int)
        assert np.abs(decoded - want).max() <= 1


def test_routed_saved_model_restores_every_model_in_the_tf1_loader(routed, tmp_path):
    # TF-Serving's C++ loader: both models' weights (batch-norm statistics included) restored.
    low, high, path, _ = routed
    x = np.random.default_rng(4).random((2, 6, 7, 1)).astype(np.float32)
    got = _saved_model_cli_run(path, x, [20.0, 60.0], tmp_path)
    np.testing.assert_allclose(got[:1], _run(low, x[:1], [20.0]), atol=1e-5)
    np.testing.assert_allclose(got[1:], _run(high, x[1:], [60.0]), atol=1e-5)


def test_variables_are_saved_in_the_models_order(routed):
    # Keras saved them in the order the traced functions captured them, which changed from
    # one export to the next: each re-release stored the same weights again in git. In the
    # models' own order, the same weights give the same variables file.
    low, high, path, _ = routed
    reader = tf.train.load_checkpoint(f"{path}/variables/variables")
    weights = [v.numpy() for model in (low, high) for v in model.variables]
    saved = [reader.get_tensor(f"_all_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE") for i in range(len(weights))]
    assert all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(saved, weights))


def test_exact_routes_serve_their_sigma_only_and_not_the_opponent_channels(tmp_path):
    # deepam_tf.denoise's "auto": the fixed-σ preset for exactly its σ, gray or R, G, B one by
    # one (JPEG), but a blind one for the opponent channels of an RGB image, even when the
    # noisiest of them has exactly that σ.
    import skimage.data

    from deepam_tf import colour, denoise

    low, special = _small_conditioned(1), _small_conditioned(3)
    level = float(np.float32(40.0) * np.float32(colour.NOISE_SCALE.max()))  # RGB at 40: its noisiest channel
    path = export_saved_model(low, str(tmp_path), "exact", 1, exact=[(level, special)])
    loaded = tf.saved_model.load(path, tags=["serve"])
    x = np.random.default_rng(5).random((3, 10, 12, 1)).astype(np.float32)
    sigmas = np.array([level, level + 0.5, level], np.float32)
    got = loaded.signatures["serving_default"](image=tf.constant(x), sigma=tf.constant(sigmas))["restored"].numpy()
    np.testing.assert_allclose(got[[0, 2]], _run(special, x[[0, 2]], sigmas[[0, 2]]), atol=1e-5)
    np.testing.assert_allclose(got[1:2], _run(low, x[1:2], sigmas[1:2]), atol=1e-5)
    assert np.abs(got[1:2] - _run(special, x[1:2], sigmas[1:2])).max() > 1e-3  # the models differ
    rgb = skimage.data.astronaut()[100:124, 200:236]
    for pixels, sigma, model, space in ((rgb, 40.0, low, "opponent"), (rgb[..., :1], level, special, "opponent")):
        out = loaded.signatures["encoded"](image_bytes=tf.stack([tf.io.encode_png(pixels)]),
                                           sigma=tf.constant([sigma]))["png_bytes"]
        decoded = tf.io.decode_png(out.numpy()[0]).numpy().astype(int)
        want = denoise(pixels if pixels.shape[-1] == 3 else pixels[..., 0], sigma, model=model,
                       colour_space=space).reshape(decoded.shape).astype(int)
        assert np.abs(decoded - want).max() <= 1, (pixels.shape, sigma)


def test_routes_that_cannot_serve_are_refused(tmp_path):
    low = _small_conditioned(1)
    plain = DeepAM(stages=1, features=4, depth=3, gamma_layer=2, fusion_layer=1)
    rgb = DeepAM(stages=1, features=4, depth=3, gamma_layer=2, fusion_layer=1, channels=3,
                 noise_level_input=True)
    cases = [(plain, [(40.0, low)], "noise-level-conditioned"),
             (low, [(40.0, rgb)], "one interface"),
             (low, [(40.0, low), (30.0, low)], "must rise"),
             (low, [(255.0, low)], "must rise")]
    exact_cases = [(low, [(25.0, low), (25.0, low)], "distinct"),
                   (low, [(0.0, low)], "distinct"),
                   (plain, [(25.0, low)], "noise-level-conditioned"),
                   (low, [(25.0, rgb)], "for sigma exactly 25")]
    for model, above, match in cases:
        with pytest.raises(ValueError, match=match):
            export_saved_model(model, str(tmp_path), "bad", 1, above)
    for model, exact, match in exact_cases:
        with pytest.raises(ValueError, match=match):
            export_saved_model(model, str(tmp_path), "bad", 1, exact=exact)
    assert not (tmp_path / "bad").exists()


def test_export_command_refuses_auto_as_tflite_and_specialists_without_auto(tmp_path, capsys):
    from deepam_tf import cli

    assert cli.main(["export", "auto", "--format", "tflite", "-o", str(tmp_path)]) == 1
    assert "export each of them" in capsys.readouterr().err
    assert cli.main(["export", "denoise_blind", "--specialists", "-o", str(tmp_path)]) == 1
    assert "--specialists adds the fixed-sigma presets" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
