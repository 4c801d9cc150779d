import numpy as np
import pytest
import keras

from deepam_tf import DeepAM


def _small(**kwargs):
    return DeepAM(**{"stages": 2, "features": 8, "depth": 5, "gamma_layer": 4, **kwargs})


def test_paper_sized_denoiser_has_about_0_9m_parameters():
    assert 0.85e6 < DeepAM(stages=3, channels=1).count_params() < 0.95e6


@pytest.mark.parametrize("hw", [(2, 2), (7, 5), (33, 40), (17, 64)])
def test_any_size(hw):
    x = np.random.rand(1, *hw, 1).astype("float32")
    assert _small()(x).shape == (1, *hw, 1)


def test_untrained_residual_model_is_the_identity():
    x = np.random.rand(2, 12, 13, 1).astype("float32")
    np.testing.assert_allclose(DeepAM(stages=2, features=8)(x), x, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, inputs",
    [
        ({}, lambda x: x),
        ({"guidance_channels": 3}, lambda x: {"image": x, "guidance": np.concatenate([x] * 3, -1)}),
        ({"noise_level_input": True}, lambda x: {"image": x, "noise_level": np.full((2, 1), 0.1, "float32")}),
        ({"guidance_channels": 3, "noise_level_input": True, "dtype": "mixed_bfloat16"},
         lambda x: {"image": x, "guidance": np.concatenate([x] * 3, -1),
                    "noise_level": np.full((2, 1), 0.1, "float32")}),
    ],
    ids=["plain", "guided", "noise_level", "bfloat16"],
)
def test_keras_save_load_is_exact(tmp_path, kwargs, inputs):
    model = _small(residual_gradients=False, **kwargs)
    x = inputs(np.random.rand(2, 16, 12, 1).astype("float32"))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is DeepAM
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_dtype_policy_reaches_the_networks_but_not_the_solve():
    model = _small(guidance_channels=3, noise_level_input=True, dtype="mixed_bfloat16")
    policies = {layer.name: layer.dtype_policy.name for layer in model.layers
                if layer.name.startswith(("stage", "noise_level_map"))}
    for name, policy in policies.items():
        exact = name.endswith("reconstruction") or name == "noise_level_map"
        assert policy == ("float32" if exact else "mixed_bfloat16"), name
    x = np.random.rand(1, 9, 10, 1).astype("float32")
    out = model({"image": x, "guidance": np.repeat(x, 3, -1), "noise_level": np.full((1, 1), 0.1, "float32")})
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in model.weights)


def test_config_round_trip():
    model = _small(guidance_channels=2, kernel_regularizer=keras.regularizers.L2(1e-4))
    clone = DeepAM.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params()


def test_frozen_batch_norm_is_kept_by_the_config():
    model = _small(freeze_batch_norm=True)
    norms = model.batch_norm_layers()
    assert norms and not any(layer.trainable for layer in norms)
    clone = DeepAM.from_config(model.get_config())
    assert clone.freeze_batch_norm and len(clone.trainable_weights) == len(model.trainable_weights)
    by_hand = _small()
    for layer in by_hand.batch_norm_layers():
        layer.trainable = False
    assert {**by_hand.get_config(), "name": None} == {**model.get_config(), "name": None}
    by_hand.batch_norm_layers()[0].trainable = True  # partly frozen: not restored as frozen
    assert by_hand.get_config()["freeze_batch_norm"] is False
    with pytest.raises(ValueError, match="freeze_batch_norm must be true or false"):
        _small(freeze_batch_norm="yes")


def test_guidance_is_used():
    model = _small(guidance_channels=1, residual_gradients=False)
    x = np.random.rand(1, 16, 16, 1).astype("float32")
    a = model({"image": x, "guidance": x})
    b = model({"image": x, "guidance": 1 - x})
    assert np.abs(a - b).max() > 1e-4


def test_fit_lowers_l1_loss():
    keras.utils.set_random_seed(0)
    clean = np.random.rand(32, 16, 16, 1).astype("float32")
    clean = np.cumsum(np.cumsum(clean, 1), 2) / 256.0  # smooth images
    noisy = clean + np.random.normal(0, 0.1, clean.shape).astype("float32")
    model = _small()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mae")
    before = model.evaluate(noisy, clean, verbose=0)
    model.fit(noisy, clean, batch_size=8, epochs=8, verbose=0)
    after = model.evaluate(noisy, clean, verbose=0)
    assert after < 0.8 * before


@pytest.mark.parametrize(
    "kwargs, inputs, match",
    [
        ({}, np.zeros((1, 8, 8, 3), "float32"), r"image must have shape \[B, H, W, 1\]"),
        ({}, np.zeros((1, 1, 8, 1), "float32"), "H and W >= 2"),
        ({"guidance_channels": 3}, np.zeros((1, 8, 8, 1), "float32"), "guidance"),
        (
            {"guidance_channels": 3},
            {"image": np.zeros((1, 8, 8, 1), "float32"), "guidance": np.zeros((1, 8, 8, 2), "float32")},
            r"guidance.*(None, None, None, 3)|guidance must have shape",
        ),
        (
            {"guidance_channels": 1},
            {"image": np.zeros((1, 8, 8, 1), "float32"), "guidance": np.zeros((1, 8, 9, 1), "float32")},
            "same H and W",
        ),
        ({}, {"image": np.zeros((1, 8, 8, 1), "float32")}, "alone"),
    ],
)
def test_bad_inputs_raise_value_error(kwargs, inputs, match):
    with pytest.raises(ValueError, match=match):
        _small(**kwargs)(inputs)


_IMAGE = np.full((2, 8, 8, 1), 0.5, "float32")
_LEVEL = np.full((2, 1), 0.1, "float32")


@pytest.mark.parametrize(
    "inputs, match",
    [
        ({"image": np.zeros((2, 1, 8, 1), "float32"), "noise_level": _LEVEL}, r"H and W >= 2, got \[2, 1, 8, 1\]"),
        ({"image": _IMAGE[0], "noise_level": _LEVEL}, r"image must have shape \[B, H, W, 1\], got \[8, 8, 1\]"),
        ({"image": _IMAGE, "noise_level": _LEVEL[:, 0]}, r"noise_level must have shape \[B, 1\], got \[2\]"),
        ({"image": _IMAGE, "noise_level": _LEVEL[:1]}, r"one batch size, got \{'image': 2, 'noise_level': 1\}"),
        ({"image": (_IMAGE * 255).astype("uint8"), "noise_level": _LEVEL}, "image must be float .* got uint8"),
        ({"image": np.where(np.eye(8)[None, ..., None] > 0, np.nan, _IMAGE).astype("float32"),
          "noise_level": _LEVEL}, "image contains NaN or Inf"),
        ({"image": _IMAGE, "noise_level": np.full((2, 1), np.inf, "float32")}, "noise_level contains NaN or Inf"),
        (_IMAGE, r"inputs must be a dict with keys 'image' \[B, H, W, 1\], 'noise_level' \[B, 1\]; got ndarray"),
        # σ on the 0-255 scale where the model takes σ / 255: before, a silently wrong result.
        ({"image": _IMAGE, "noise_level": np.full((2, 1), 25, "float32")},
         r"noise_level must be σ on the image's \[0, 1\] scale.*25 / 255.*\[25, 25\]"),
        ({"image": _IMAGE, "noise_level": -_LEVEL}, r"noise_level .* got values in \[-0.1, -0.1\]"),
        ({"image": _IMAGE * 255, "noise_level": _LEVEL}, r"image is float with values in \[127.5, 127.5\]"),
        # The noise level widens the room: at σ = 255, six σ beyond [0, 1].
        ({"image": _IMAGE + 6.6, "noise_level": np.ones((2, 1), "float32")}, r"values in \[7.1, 7.1\]"),
    ],
    ids=["1-pixel-high", "no-batch-axis", "level-rank", "batch-sizes", "uint8", "nan", "inf-level", "no-dict",
         "level-0-255", "negative-level", "image-0-255", "beyond-the-noise"],
)
@pytest.mark.parametrize("tile_size", [None, 4])
def test_predict_refuses_bad_arrays_naming_the_input(inputs, match, tile_size):
    # Keras' predict pipeline would run some of these (NaN out, uint8 as 0-255) or fail
    # with errors that name no input.
    with pytest.raises(ValueError, match=match):
        _small(noise_level_input=True).predict(inputs, verbose=0, tile_size=tile_size)


def test_predict_takes_noisy_images_as_far_outside_the_unit_range_as_their_noise_reaches():
    image = np.full((2, 8, 8, 1), 0.5, "float32")
    image[:, 0, 0, 0] = (-1.4, 2.4)  # inside [-1.5, 2.5] whatever the noise level
    _small(noise_level_input=True).predict({"image": image, "noise_level": _LEVEL}, verbose=0)
    image[:, 0, 0, 0] = (-5.0, 6.0)  # within six σ of [0, 1] at σ = 255
    _small(noise_level_input=True).predict({"image": image, "noise_level": np.ones((2, 1), "float32")}, verbose=0)
    _small().predict(image, verbose=0)  # no level given: room for any σ
    with pytest.raises(ValueError, match="float images must be on the \\[0, 1\\] scale"):
        _small(noise_level_input=True).predict({"image": image, "noise_level": _LEVEL}, verbose=0)
