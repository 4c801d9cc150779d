import numpy as np
import pytest
import tensorflow as tf

from deepam_tf import ops
from dense import gradient_matrices, solve

SHAPE = (2, 7, 9, 2)


def _problem(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    b, h, w, c = SHAPE
    f = rng.standard_normal(SHAPE).astype(dtype)
    v = rng.standard_normal((b, h, w, 2 * c)).astype(dtype)
    gamma = rng.uniform(0.05, 2.0, SHAPE).astype(dtype)
    return f, v, gamma


def _dense_tf(f, v, gamma):
    """Differentiable dense solve with tf.linalg.solve, for autodiff reference gradients."""
    b, h, w, c = SHAPE
    dx, dy = (tf.constant(m) for m in gradient_matrices(h, w))
    laplacian = tf.transpose(dx) @ dx + tf.transpose(dy) @ dy
    flat = lambda t: tf.reshape(tf.transpose(t, [0, 3, 1, 2]), [b, -1, h * w, 1])  # noqa: E731
    fx, gx = flat(f), flat(gamma)
    vx, vy = flat(v[..., :c]), flat(v[..., c:])
    rhs = gx * fx + tf.transpose(dx) @ vx + tf.transpose(dy) @ vy
    a = tf.linalg.diag(gx[..., 0]) + laplacian
    u = tf.linalg.solve(a, rhs)
    return tf.transpose(tf.reshape(u, [b, c, h, w]), [0, 2, 3, 1])


@pytest.mark.parametrize("preconditioner", ["jacobi", "dct"])
def test_forward_matches_dense_solve(preconditioner):
    f, v, gamma = _problem()
    u = ops.reconstruct(
        f, v, gamma, iterations=500, tolerance=1e-13, preconditioner=preconditioner
    ).numpy()
    reference = solve(f, v, gamma)
    assert np.linalg.norm(u - reference) <= 1e-8 * np.linalg.norm(reference)


@pytest.mark.parametrize("preconditioner", ["jacobi", "dct"])
def test_gradients_match_dense_autodiff(preconditioner):
    f, v, gamma = (tf.constant(t) for t in _problem(seed=1))
    weights = tf.constant(np.random.default_rng(2).standard_normal(SHAPE))

    def grads(fn):
        with tf.GradientTape() as tape:
            tape.watch([f, v, gamma])
            loss = tf.reduce_sum(weights * fn(f, v, gamma))
        return tape.gradient(loss, [f, v, gamma])

    got = grads(
        lambda *a: ops.reconstruct(
            *a, iterations=500, tolerance=1e-13, preconditioner=preconditioner
        )
    )
    want = grads(_dense_tf)
    for name, g, w in zip(("f", "v", "gamma"), got, want):
        error = np.linalg.norm(g.numpy() - w.numpy()) / np.linalg.norm(w.numpy())
        assert error <= 1e-8, (name, error)


def test_float32_forward_is_accurate():
    f, v, gamma = _problem(np.float32)
    u = ops.reconstruct(f, v, gamma, iterations=200, tolerance=1e-6).numpy()
    assert u.dtype == np.float32
    reference = solve(*(t.astype(np.float64) for t in (f, v, gamma)))
    assert np.linalg.norm(u - reference) <= 1e-5 * np.linalg.norm(reference)


def test_tolerance_stops_early_and_meets_the_residual():
    f, v, gamma = (tf.constant(t) for t in _problem(seed=3))
    b = gamma * f + ops.gradient_adjoint(v)
    apply_a = ops.pcg.system_operator(gamma)
    for name in ops.PRECONDITIONERS:
        precondition = ops.pcg.make_preconditioner(name, gamma)
        _, steps, residual = ops.pcg.pcg(apply_a, precondition, b, f, 500, 1e-6)
        assert 0 < int(steps) < 500
        assert float(tf.reduce_max(residual)) <= 1e-6
        # One step fewer does not meet the tolerance: the loop stopped as soon as it could.
        _, _, before = ops.pcg.pcg(apply_a, precondition, b, f, int(steps) - 1, 1e-6)
        assert float(tf.reduce_max(before)) > 1e-6
        # tolerance 0 runs every iteration.
        _, all_steps, _ = ops.pcg.pcg(apply_a, precondition, b, f, 7, 0.0)
        assert int(all_steps) == 7


def test_dct_beats_jacobi_for_small_gamma():
    rng = np.random.default_rng(4)
    f = tf.constant(rng.random((1, 32, 32, 1)))
    gamma = tf.fill([1, 32, 32, 1], tf.constant(0.01, tf.float64))
    b = gamma * f + ops.gradient_adjoint(ops.gradient(tf.constant(rng.random((1, 32, 32, 1)))))
    apply_a = ops.pcg.system_operator(gamma)
    steps = {
        name: int(ops.pcg.pcg(apply_a, ops.pcg.make_preconditioner(name, gamma), b, f, 1000, 1e-4)[1])
        for name in ops.PRECONDITIONERS
    }
    assert steps["dct"] <= 2 < steps["jacobi"]


def test_xla_and_unrolled_match_eager():
    f, v, gamma = (tf.constant(t, tf.float32) for t in _problem(np.float32, seed=5))
    for preconditioner in ops.PRECONDITIONERS:
        options = dict(iterations=3, tolerance=0.0, preconditioner=preconditioner)
        eager = ops.reconstruct(f, v, gamma, **options)
        xla = tf.function(lambda *a: ops.reconstruct(*a, **options), jit_compile=True)(f, v, gamma)
        unrolled = ops.reconstruct(f, v, gamma, unrolled=True, **options)
        np.testing.assert_allclose(xla.numpy(), eager.numpy(), atol=1e-5)
        np.testing.assert_allclose(unrolled.numpy(), eager.numpy(), atol=1e-6)
        # Three iterations are far from converged, so the equalities above are not trivial.
        converged = ops.reconstruct(
            f, v, gamma, iterations=300, tolerance=1e-7, preconditioner=preconditioner
        )
        assert np.abs(converged.numpy() - eager.numpy()).max() > 1e-3



@pytest.mark.parametrize("shape", [(2, 7, 9, 2), (1, 16, 5, 1), (3, 2, 2, 1)])
def test_dct_by_convolutions_is_the_fft_dct(shape):
    import scipy.fft

    from deepam_tf.ops import pcg

    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape[1:3])
    np.testing.assert_allclose(pcg.dct_matrix(shape[1]) @ x, scipy.fft.dct(x, axis=0, norm="ortho"), atol=1e-12)
    gamma = tf.constant(rng.uniform(0.01, 3.0, shape))
    r = tf.constant(rng.standard_normal(shape))
    fft = pcg.dct_preconditioner(gamma)(r)
    convolutions = pcg.dct_preconditioner(gamma, static=True)(r)
    np.testing.assert_allclose(convolutions.numpy(), fft.numpy(), atol=1e-12)
    # With constant γ it is the exact inverse of the system (the DCT diagonalises DᵀD).
    constant = tf.fill(shape, tf.constant(0.7, tf.float64))
    apply_a = pcg.system_operator(constant)
    np.testing.assert_allclose(pcg.dct_preconditioner(constant, static=True)(apply_a(r)).numpy(), r.numpy(),
                               atol=1e-10)

def test_unrolled_gradient_matches_while_loop():
    f, v, gamma = (tf.constant(t) for t in _problem(seed=6))
    def grads(unrolled):
        with tf.GradientTape() as tape:
            tape.watch([f, v, gamma])
            u = ops.reconstruct(f, v, gamma, iterations=5, tolerance=0.0, unrolled=unrolled)
            loss = tf.reduce_sum(u * u)
        return tape.gradient(loss, [f, v, gamma])
    for a, b in zip(grads(True), grads(False)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-12)


@pytest.mark.parametrize(
    "f_shape, v_shape, g_shape, match",
    [
        ((7, 9, 1), (7, 9, 2), (7, 9, 1), "f must have shape"),
        ((1, 7, 9, 2), (1, 7, 9, 2), (1, 7, 9, 2), r"v must have shape \[1, 7, 9, 4\]"),
        ((1, 7, 9, 2), (1, 7, 9, 4), (1, 7, 9, 1), r"gamma must have shape \[1, 7, 9, 2\]"),
        ((1, 7, 9, 1), (1, 7, 8, 2), (1, 7, 9, 1), "v must have shape"),
        ((1, 1, 9, 1), (1, 1, 9, 2), (1, 1, 9, 1), "height >= 2"),
        ((1, 7, 1, 1), (1, 7, 1, 2), (1, 7, 1, 1), "width >= 2"),
    ],
)
def test_bad_shapes_raise_value_error(f_shape, v_shape, g_shape, match):
    with pytest.raises(ValueError, match=match):
        ops.reconstruct(np.zeros(f_shape), np.zeros(v_shape), np.ones(g_shape))


def test_bad_values_and_options_raise_value_error():
    f, v, gamma = _problem()
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        ops.reconstruct(f, v, -gamma)
    bad = f.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="f contains NaN"):
        ops.reconstruct(bad, v, gamma)
    with pytest.raises(ValueError, match="preconditioner"):
        ops.reconstruct(f, v, gamma, preconditioner="ilu")
    with pytest.raises(ValueError, match="iterations"):
        ops.reconstruct(f, v, gamma, iterations=0)
    with pytest.raises(ValueError, match="v must have f's dtype"):
        ops.reconstruct(tf.constant(f), tf.constant(v, tf.float32), gamma)
    with pytest.raises(ValueError, match="float32 or float64"):
        ops.reconstruct(f.astype(np.int32), v, gamma)
