import numpy as np
import pytest
import tensorflow as tf

from deepam_tf import ops
from deepam_tf.ops import differences
from dense import gradient_matrices


@pytest.mark.parametrize("shape", [(2, 7, 9, 2), (1, 2, 2, 1), (3, 16, 5, 3), (1, 33, 64, 1)])
def test_gradient_adjoint_is_exact(shape):
    rng = np.random.default_rng(0)
    b, h, w, c = shape
    u = tf.constant(rng.standard_normal(shape))
    v = tf.constant(rng.standard_normal((b, h, w, 2 * c)))
    lhs = tf.reduce_sum(ops.gradient(u) * v)
    rhs = tf.reduce_sum(u * ops.gradient_adjoint(v))
    assert abs(float(lhs - rhs)) <= 1e-12 * max(1.0, abs(float(lhs)))


def test_gradient_matches_definition():
    rng = np.random.default_rng(1)
    u = rng.standard_normal((2, 5, 6, 3))
    v = ops.gradient(tf.constant(u)).numpy()
    assert v.shape == (2, 5, 6, 6)
    np.testing.assert_array_equal(v[:, :, :-1, :3], u[:, :, 1:] - u[:, :, :-1])
    np.testing.assert_array_equal(v[:, :, -1, :3], 0.0)
    np.testing.assert_array_equal(v[:, :-1, :, 3:], u[:, 1:] - u[:, :-1])
    np.testing.assert_array_equal(v[:, -1, :, 3:], 0.0)


def test_laplacian_and_neighbour_count_match_dense():
    h, w = 6, 7
    dx, dy = gradient_matrices(h, w)
    laplacian = dx.T @ dx + dy.T @ dy
    u = np.random.default_rng(2).standard_normal((1, h, w, 1))
    got = ops.neumann_laplacian(tf.constant(u)).numpy().ravel()
    np.testing.assert_allclose(got, laplacian @ u.ravel(), atol=1e-12)
    rows, columns = differences.neighbour_counts(tf.constant(u))
    assert rows.shape == (1, h, 1, 1) and columns.shape == (1, 1, w, 1)
    np.testing.assert_array_equal((rows + columns).numpy().ravel(), np.diag(laplacian))


def test_dct_diagonalises_the_laplacian():
    # Exact inverse for constant γ: one preconditioner application solves the system.
    h, w, gamma = 5, 8, 0.3
    rng = np.random.default_rng(3)
    x = tf.constant(rng.standard_normal((2, h, w, 1)))
    g = tf.fill([2, h, w, 1], tf.constant(gamma, tf.float64))
    apply_a = ops.pcg.system_operator(g)
    inverse = ops.pcg.make_preconditioner("dct", g)
    np.testing.assert_allclose(inverse(apply_a(x)).numpy(), x.numpy(), atol=1e-12)
