"""The DeepAM reconstruction layer's math: ``u = (Γ + DᵀD)⁻¹ (Γ f + Dᵀ v)``.

The solve is wrapped in ``tf.custom_gradient``. Its backward pass is a second solve with
the same symmetric matrix, ``(Γ + DᵀD) x = ∂ℓ/∂u``, giving

    ∂ℓ/∂f = γ ∘ x,     ∂ℓ/∂v = D x,     ∂ℓ/∂γ = x ∘ (f − u),

so no PCG iterate is kept for backpropagation (memory is independent of the iteration
count) and the gradient is exact up to the solver tolerance.
"""

import tensorflow as tf

from deepam_tf.ops import differences, pcg

# Chosen by benchmarks/pcg.py (see the README's performance section): the DCT
# preconditioner reaches a relative residual of 1e-4 in a handful of iterations for every
# γ regime the networks produce, where Jacobi needs hundreds for small γ.
DEFAULT_PRECONDITIONER = "dct"
DEFAULT_ITERATIONS = 30
DEFAULT_TOLERANCE = 1e-4

_FLOAT_DTYPES = (tf.float32, tf.float64)


def shape_text(shape):
    """A shape as text, unknown dims as '?': ``[2, ?, ?, 1]``."""
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def validate_inputs(f, v, gamma):
    """Converts f, v and gamma to tensors and checks ranks, dtypes and channel counts.

    Raises ``ValueError`` naming the argument and the shape it expected. Values (γ >= 0,
    finiteness) are checked only when running eagerly, where it costs no graph ops.
    """
    f = tf.convert_to_tensor(f)
    if f.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"f must be float32 or float64, got {f.dtype.name}")
    v = tf.convert_to_tensor(v, dtype_hint=f.dtype)
    gamma = tf.convert_to_tensor(gamma, dtype_hint=f.dtype)
    for name, t in (("v", v), ("gamma", gamma)):
        if t.dtype != f.dtype:
            raise ValueError(f"{name} must have f's dtype {f.dtype.name}, got {t.dtype.name}")
    if f.shape.rank != 4:
        raise ValueError(f"f must have shape [B, H, W, C], got {shape_text(f.shape)}")
    b, h, w, c = f.shape
    expected = {"v": [b, h, w, None if c is None else 2 * c], "gamma": [b, h, w, c]}
    for name, t in (("v", v), ("gamma", gamma)):
        want = expected[name]
        if t.shape.rank != 4 or not tf.TensorShape(want).is_compatible_with(t.shape):
            raise ValueError(
                f"{name} must have shape {shape_text(want)} for f of shape "
                f"{shape_text(f.shape)}, got {shape_text(t.shape)}"
            )
    for axis, name in ((1, "height"), (2, "width")):
        size = f.shape[axis]
        if size is not None and size < 2:
            raise ValueError(f"f must have {name} >= 2, got shape {shape_text(f.shape)}")
    if tf.executing_eagerly():
        for name, t in (("f", f), ("v", v), ("gamma", gamma)):
            if not bool(tf.reduce_all(tf.math.is_finite(t))):
                raise ValueError(f"{name} contains NaN or Inf")
        if bool(tf.reduce_any(gamma < 0)):
            raise ValueError(f"gamma must be >= 0, its minimum is {float(tf.reduce_min(gamma))}")
    return f, v, gamma


def check_options(iterations, tolerance, preconditioner):
    """Raises ValueError naming a bad solver option (see :func:`reconstruct`)."""
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    if preconditioner not in pcg.PRECONDITIONERS:
        raise ValueError(
            f"preconditioner must be one of {pcg.PRECONDITIONERS}, got {preconditioner!r}"
        )


def _solve(b, x0, gamma, iterations, tolerance, preconditioner, unrolled):
    apply_a = pcg.system_operator(gamma)
    # The unrolled form is for static-shape exports: its DCT runs by convolutions, not FFTs.
    precondition = pcg.make_preconditioner(preconditioner, gamma, static=unrolled)
    if unrolled:
        return pcg.pcg_unrolled(apply_a, precondition, b, x0, iterations)
    x, _, _ = pcg.pcg(apply_a, precondition, b, x0, iterations, tolerance)
    return x


def _reconstruct(f, v, gamma, iterations, tolerance, preconditioner, unrolled):
    options = (iterations, tolerance, preconditioner, unrolled)

    @tf.custom_gradient
    def solve(f, v, gamma):
        u = _solve(gamma * f + differences.gradient_adjoint(v), f, gamma, *options)

        def backward(du):
            x = _solve(du, tf.zeros_like(du), gamma, *options)
            return gamma * x, differences.gradient(x), x * (f - u)

        return u, backward

    return solve(f, v, gamma)


# Eager calls go through one traced function so the loop runs without a host round-trip
# per iteration; inside tf.function / Keras the plain function is inlined.
_reconstruct_traced = tf.function(_reconstruct, reduce_retracing=True)


def reconstruct(
    f,
    v,
    gamma,
    *,
    iterations=DEFAULT_ITERATIONS,
    tolerance=DEFAULT_TOLERANCE,
    preconditioner=DEFAULT_PRECONDITIONER,
    unrolled=False,
):
    """Solves ``(Γ + DᵀD) u = Γ f + Dᵀ v`` by PCG warm-started at f, differentiably.

    Args:
        f: degraded image ``[B, H, W, C]``, float32 or float64, H and W >= 2.
        v: target gradients ``[B, H, W, 2C]`` (x then y, as :func:`gradient`).
        gamma: data-fidelity weights ``[B, H, W, C]``, >= 0; the system is positive
            definite as soon as γ > 0 somewhere in each image channel.
        iterations: maximum number of PCG iterations (exact count when ``unrolled``).
        tolerance: stop once every system's ``‖r‖ <= tolerance ‖b‖``.
        preconditioner: ``"dct"`` (exact for constant γ) or ``"jacobi"`` (diagonal).
        unrolled: run exactly ``iterations`` steps as straight-line ops (no while loop),
            for static-shape exports; ``tolerance`` is then unused.

    Returns:
        u, ``[B, H, W, C]``. Gradients flow to f, v and gamma through a second solve.

    Example:
        >>> f = tf.random.uniform([1, 32, 32, 1])
        >>> u = reconstruct(f, gradient(f), tf.fill([1, 32, 32, 1], 0.5))
    """
    f, v, gamma = validate_inputs(f, v, gamma)
    check_options(iterations, tolerance, preconditioner)
    run = _reconstruct_traced if tf.executing_eagerly() else _reconstruct
    return run(f, v, gamma, iterations, float(tolerance), preconditioner, bool(unrolled))
