import numpy as np
import pytest

from deepam_tf import DeepAM
from deepam_tf.models import ensemble
from test_tiling import _randomized


def test_dihedral_transforms_are_eight_distinct_invertible_maps():
    x = np.arange(2 * 3 * 5 * 1, dtype=np.float32).reshape(2, 3, 5, 1)
    seen = []
    for k in range(ensemble.TRANSFORMS):
        y = ensemble.dihedral(x, k)
        np.testing.assert_array_equal(ensemble.undo_dihedral(y, k), x)
        assert not any(y.shape == s.shape and np.array_equal(y, s) for s in seen)
        seen.append(y)


@pytest.mark.parametrize(
    "kwargs", [dict(), dict(noise_level_input=True), dict(guidance_channels=3)],
    ids=["plain", "sigma_conditioned", "guided"],
)
def test_self_ensemble_is_equivariant_where_one_pass_is_not(kwargs):
    model = _randomized(DeepAM(stages=2, features=8, **kwargs))
    rng = np.random.default_rng(2)
    inputs = {"image": rng.uniform(0, 1, (1, 21, 34, 1)).astype(np.float32)}
    if kwargs.get("noise_level_input"):
        inputs["noise_level"] = np.full((1, 1), 0.1, np.float32)
    if kwargs.get("guidance_channels"):
        inputs["guidance"] = rng.uniform(0, 1, (1, 21, 34, 3)).astype(np.float32)
    if len(inputs) == 1:
        inputs = inputs["image"]

    single = model.predict(inputs, verbose=0)
    averaged = model.predict(inputs, verbose=0, self_ensemble=True)
    assert averaged.shape == single.shape
    for k in (1, 4, 7):
        one_pass = model.predict(ensemble.dihedral_inputs(inputs, k), verbose=0)
        assert np.max(np.abs(one_pass - ensemble.dihedral(single, k))) > 1e-3
        both = model.predict(ensemble.dihedral_inputs(inputs, k), verbose=0, self_ensemble=True)
        np.testing.assert_allclose(both, ensemble.dihedral(averaged, k), atol=2e-6)
    # The mean of the 8 mapped-back passes, and tiling stays exact underneath.
    manual = np.mean([
        ensemble.undo_dihedral(model.predict(ensemble.dihedral_inputs(inputs, k), verbose=0), k)
        for k in range(8)
    ], axis=0)
    np.testing.assert_allclose(averaged, manual, atol=2e-6)
    tiled = model.predict(inputs, verbose=0, self_ensemble=True, tile_size=12)
    np.testing.assert_allclose(tiled, averaged, atol=1e-5)
