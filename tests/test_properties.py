"""Property-based tests of the ops on random shapes and dtypes: no crash, adjointness and
the solve's equation hold, or a clear ValueError."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepam_tf import ops

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
shapes = st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12), st.integers(1, 3))
dtypes = st.sampled_from([np.float32, np.float64, np.float16, np.int32])


@SETTINGS
@given(shape=shapes, dtype=dtypes, seed=st.integers(0, 2**16))
def test_gradient_adjointness_or_clear_error(shape, dtype, seed):
    b, h, w, c = shape
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(shape).astype(dtype)
    v = rng.standard_normal((b, h, w, 2 * c)).astype(dtype)
    if dtype == np.int32:
        with pytest.raises(ValueError, match="u must be a float tensor"):
            ops.gradient(u)
        with pytest.raises(ValueError, match="v must be a float tensor"):
            ops.gradient_adjoint(v)
        return
    if dtype == np.float16:  # mixed precision: computes, in float16 accuracy
        assert ops.gradient(u).dtype == tf.float16 and ops.gradient_adjoint(v).shape == shape
        return
    lhs = float(tf.reduce_sum(ops.gradient(u) * v))
    rhs = float(tf.reduce_sum(u * ops.gradient_adjoint(v)))
    tolerance = (1e-4 if dtype == np.float32 else 1e-12) * (1 + abs(lhs)) * np.sqrt(u.size)
    assert abs(lhs - rhs) <= tolerance


@SETTINGS
@given(rank=st.integers(0, 6).filter(lambda r: r != 4), channels=st.integers(1, 5))
def test_difference_ops_refuse_bad_rank_and_odd_v(rank, channels):
    with pytest.raises(ValueError, match=r"u must have shape \[B, H, W, C\]"):
        ops.gradient(np.zeros((2,) * rank, np.float32))
    v = np.zeros((1, 3, 3, channels), np.float32)
    if channels % 2:
        with pytest.raises(ValueError, match="v must have 2C channels"):
            ops.gradient_adjoint(v)
    else:
        assert ops.gradient_adjoint(v).shape == (1, 3, 3, channels // 2)


@SETTINGS
@given(shape=shapes, dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16),
       preconditioner=st.sampled_from(["dct", "jacobi"]))
def test_reconstruct_solves_its_equation_or_refuses(shape, dtype, seed, preconditioner):
    b, h, w, c = shape
    rng = np.random.default_rng(seed)
    f = rng.uniform(0, 1, shape).astype(dtype)
    v = rng.standard_normal((b, h, w, 2 * c)).astype(dtype) * 0.1
    gamma = rng.uniform(0.01, 2.0, shape).astype(dtype)
    if h < 2 or w < 2:
        with pytest.raises(ValueError, match="height >= 2|width >= 2"):
            ops.reconstruct(f, v, gamma, preconditioner=preconditioner)
        return
    u = ops.reconstruct(f, v, gamma, iterations=200, tolerance=1e-6, preconditioner=preconditioner)
    residual = gamma * u + ops.neumann_laplacian(u) - (gamma * f + ops.gradient_adjoint(tf.constant(v)))
    scale = float(tf.norm(gamma * f + ops.gradient_adjoint(tf.constant(v)))) + 1e-12
    assert float(tf.norm(residual)) / scale <= (1e-4 if dtype == np.float32 else 1e-5)


@SETTINGS
@given(f_shape=shapes, v_channels=st.integers(1, 7), gamma_channels=st.integers(1, 4))
def test_reconstruct_names_the_mismatched_argument(f_shape, v_channels, gamma_channels):
    b, h, w, c = f_shape
    if v_channels == 2 * c and gamma_channels == c:
        return
    f = np.ones((b, max(h, 2), max(w, 2), c), np.float32)
    v = np.zeros(f.shape[:3] + (v_channels,), np.float32)
    gamma = np.ones(f.shape[:3] + (gamma_channels,), np.float32)
    with pytest.raises(ValueError, match="^(v|gamma) must have shape"):
        ops.reconstruct(f, v, gamma)
