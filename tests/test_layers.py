import numpy as np
import pytest
import keras

from deepam_tf import layers, ops


@pytest.mark.parametrize(
    "layer",
    [
        layers.AggregationNetwork(channels=2, features=8, depth=5, gamma_layer=4, fusion_layer=2),
        layers.GammaNetwork(channels=3, floor=1e-2, initial_gamma=0.5),
        layers.GuidanceNetwork(features=8, depth=2),
        layers.Reconstruction(iterations=7, tolerance=1e-3, preconditioner="jacobi"),
        layers.NoiseLevelMap(),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_get_config_round_trips(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


def test_aggregation_outputs_and_gamma_features():
    net = layers.AggregationNetwork(channels=3, features=16, residual_gradients=False)
    v, features = net(np.random.rand(2, 9, 11, 3).astype("float32"))
    assert v.shape == (2, 9, 11, 6)
    assert features.shape == (2, 9, 11, 16)
    # The exposed features are the 8th layer's output (after BN and ReLU).
    x = np.random.rand(1, 9, 11, 3).astype("float32")
    h = x
    for conv, norm in list(zip(net.convs, net.norms))[:8]:
        h = keras.ops.relu(norm(conv(h)))
    np.testing.assert_allclose(net(x)[1], h, atol=1e-5)


def test_residual_aggregation_starts_at_input_gradients():
    net = layers.AggregationNetwork(channels=1, features=8)
    x = np.random.rand(1, 8, 8, 1).astype("float32")
    np.testing.assert_allclose(net(x)[0], ops.gradient(x), atol=1e-6)


def test_guidance_features_change_the_output():
    net = layers.AggregationNetwork(channels=1, features=8, residual_gradients=False)
    x = np.random.rand(1, 8, 8, 1).astype("float32")
    g1 = np.random.rand(1, 8, 8, 4).astype("float32")
    v1, _ = net(x, guidance_features=g1)
    v2, _ = net(x, guidance_features=g1 * 0)
    assert np.abs(v1 - v2).max() > 1e-4


def test_gamma_is_at_least_the_floor():
    gamma = layers.GammaNetwork(channels=1, floor=0.01, initial_gamma=-5.0)(
        np.random.rand(2, 6, 6, 4).astype("float32")
    )
    np.testing.assert_allclose(gamma, 0.01)


def test_reconstruction_layer_runs_in_float32_under_mixed_precision():
    layer = layers.Reconstruction(dtype="mixed_bfloat16")
    f = keras.ops.cast(np.random.rand(1, 8, 8, 1), "bfloat16")
    u = layer(f, keras.ops.zeros([1, 8, 8, 2], "bfloat16"), keras.ops.ones([1, 8, 8, 1], "bfloat16"))
    assert u.dtype == "float32"


def test_mixed_precision_networks_read_the_image_unrounded():
    # A ramp of 1e-3 steps near 0.9, where bfloat16's spacing is 1/256: rounded first, its
    # differences would be 0 or 1/256. With a zero last layer, v is D u itself.
    net = layers.AggregationNetwork(channels=1, features=8, dtype="mixed_bfloat16")
    u = (0.9 + 1e-3 * np.arange(8, dtype="float32"))[None, None, :, None] * np.ones((1, 8, 1, 1), "float32")
    v, features = net(u)
    assert keras.backend.standardize_dtype(v.dtype) == "float32"
    assert keras.backend.standardize_dtype(features.dtype) == "bfloat16"
    np.testing.assert_allclose(v, ops.gradient(u), atol=1e-7)
    guidance = layers.GuidanceNetwork(features=8, depth=2, dtype="mixed_bfloat16")
    assert keras.backend.standardize_dtype(guidance(np.repeat(u, 3, -1)).dtype) == "bfloat16"
    for network in (net, guidance):
        assert [conv.compute_dtype for conv in network.convs[:2]] == ["float32", "bfloat16"]
        assert all(w.dtype == "float32" for w in network.weights)


@pytest.mark.parametrize("options, match", [
    (dict(iterations=0), "iterations must be a positive int"),
    (dict(tolerance=-1.0), "tolerance must be >= 0"),
    (dict(preconditioner="ilu"), "preconditioner must be one of"),
])
def test_bad_solver_options_are_refused_when_the_model_is_built(options, match):
    from deepam_tf import DeepAM

    with pytest.raises(ValueError, match=match):
        layers.Reconstruction(**options)
    with pytest.raises(ValueError, match=match):
        DeepAM(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2, **options)
