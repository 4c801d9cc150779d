import numpy as np
import pytest

from deepam_tf import DeepAM
from deepam_tf.models import tiling


def _randomized(model, seed=0):
    """Random weights everywhere, batch-norm statistics included, so tiling errors show."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if "moving_variance" in weight.path:
            value = rng.uniform(0.5, 1.5, shape)
        elif "gamma" in weight.path and weight.path.endswith("bias"):
            value = rng.uniform(0.05, 0.5, shape)
        else:
            value = rng.normal(0.0, 0.15, shape)
        weight.assign(value.astype(np.float32))
    return model


@pytest.mark.parametrize(
    "kwargs, extra",
    [
        (dict(channels=1), {}),
        (dict(channels=1, noise_level_input=True), {"noise_level": np.full((2, 1), 0.1, np.float32)}),
        (dict(channels=1, guidance_channels=3), {"guidance": None}),
    ],
    ids=["plain", "sigma_conditioned", "guided"],
)
def test_tiled_equals_untiled(kwargs, extra):
    model = _randomized(DeepAM(stages=2, features=8, **kwargs))
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 1, (2, 75, 93, 1)).astype(np.float32)
    inputs = image
    if extra:
        inputs = {"image": image}
        for key, value in extra.items():
            inputs[key] = value if value is not None else rng.uniform(0, 1, (2, 75, 93, 3)).astype(np.float32)
    reference = np.asarray(model(inputs, training=False))
    # 20-pixel cores: a 4x5 grid, every tile edge is inside the image somewhere.
    tiled = model.predict(inputs, tile_size=20)
    assert len(tiling.tile_grid(75, 93, 20, tiling.receptive_radius(model))) == 20
    assert np.max(np.abs(tiled - reference)) <= 1e-5
    assert np.max(np.abs(reference - image)) > 1e-2  # the model does something


@pytest.mark.parametrize("guided", [False, True], ids=["plain", "guided"])
def test_receptive_radius_is_exact(guided):
    """The stage CNN's v and γ at one pixel depend on u (and the guidance) exactly up to
    ``receptive_radius`` pixels away: the margin is neither too small nor overstated."""
    import tensorflow as tf

    model = _randomized(DeepAM(stages=1, features=8, guidance_channels=3 if guided else 0))
    cnn, _ = tiling._stage_functions(model)[0]
    size, centre = 41, 20
    rng = np.random.default_rng(3)
    u = tf.constant(rng.uniform(0, 1, (1, size, size, 1)), tf.float32)
    guidance = tf.constant(rng.uniform(0, 1, (1, size, size, max(model.guidance_channels, 1))), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([u, guidance])
        v, gamma = cnn(u, guidance, tf.zeros([1, 1]))
        outputs = [tf.reduce_sum(v[0, centre, centre]), tf.reduce_sum(gamma[0, centre, centre])]
    reach = 0
    for value in outputs:
        for source in [u, guidance] if guided else [u]:
            grad = tape.gradient(value, source)
            ys, xs = np.nonzero(np.any(np.asarray(grad)[0] != 0, axis=-1))
            if len(ys):
                reach = max(reach, int(np.max(np.maximum(abs(ys - centre), abs(xs - centre)))))
    assert reach == tiling.receptive_radius(model)


def test_tile_grid_covers_image_once():
    coverage = np.zeros((50, 37), int)
    for (y0, y1, x0, x1), (wy0, wy1, wx0, wx1) in tiling.tile_grid(50, 37, 16, 5):
        coverage[y0:y1, x0:x1] += 1
        assert wy0 <= y0 and wy1 >= y1 and wx0 <= x0 and wx1 >= x1
        assert wy0 >= 0 and wx0 >= 0 and wy1 <= 50 and wx1 <= 37
    assert np.all(coverage == 1)


def test_auto_tile_size_follows_memory():
    model = DeepAM(stages=1, features=64)
    small = tiling.auto_tile_size(model, memory=512 << 20)
    large = tiling.auto_tile_size(model, memory=64 << 30)
    assert tiling.MIN_TILE <= small < large == tiling.MAX_AUTO_TILE
    assert small % 32 == 0


@pytest.mark.parametrize("tile_size", [0, 1, 2.5, "big", True])
def test_bad_tile_size(tile_size):
    model = DeepAM(stages=1, features=8)
    with pytest.raises(ValueError, match="tile_size"):
        model.predict(np.zeros((1, 8, 8, 1), np.float32), tile_size=tile_size)
