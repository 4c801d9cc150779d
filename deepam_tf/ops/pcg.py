"""Batched preconditioned conjugate gradient for ``(Γ + DᵀD) x = b``.

Every image and channel of a ``[B, H, W, C]`` batch is an independent system: inner
products reduce over H and W only, so step sizes are ``[B, 1, 1, C]``. One step
function, :func:`pcg_step`, is shared by the while-loop solver :func:`pcg` (early stop
on the relative residual, runs on the device with no host round-trip when traced) and
the unrolled :func:`pcg_unrolled` (fixed iteration count, no loop op, for static-shape
exports such as TFLite, whose GPU delegate has no WHILE op).
"""

import numpy as np
import tensorflow as tf

from deepam_tf.ops import differences

PRECONDITIONERS = ("jacobi", "dct")


def _dot(a, b):
    return tf.reduce_sum(a * b, axis=[1, 2], keepdims=True)


def _safe_divide(num, den, floor=None):
    # num and den are >= 0 here and num == 0 whenever den == 0 (a converged system). The
    # default floor, the smallest normal number, turns 0/0 into 0 and changes nothing
    # else. A float32 model run in float16 (TFLite GPU delegates do) flushes it to 0, so
    # the unrolled form passes FLOAT16_SAFE_FLOOR instead.
    if floor is None:
        floor = np.finfo(den.dtype.as_numpy_dtype).tiny
    return num / tf.maximum(den, tf.constant(floor, den.dtype))


# The smallest normal float16. PCG dot products sum over the whole image, so they fall
# below it only once the solve has converged (benchmarks/unrolled_iterations.py measures
# the exported solve, floor included, against the while loop's).
FLOAT16_SAFE_FLOOR = 2.0 ** -14


def system_operator(gamma):
    """Returns ``x -> (Γ + DᵀD) x`` for a ``[B, H, W, C]`` gamma."""

    def apply(x):
        return gamma * x + differences.neumann_laplacian(x)

    return apply


def _plus_column_and_row(x, rows, columns, floor):
    """``x + rows + columns`` for a run-time ``x`` and constant ``rows`` ``[1, H, 1, 1]``
    and ``columns`` ``[1, 1, W, 1]``. The MAXIMUM with ``floor`` (a no-op where
    ``x + rows >= floor``) stops a converter from summing the two constants first, which
    would store an H x W constant in a static-shape export."""
    return tf.maximum(x + rows, tf.constant(floor, x.dtype)) + columns


def jacobi_preconditioner(gamma):
    """``r -> r / diag(Γ + DᵀD)``; the diagonal is γ plus the number of neighbours."""
    rows, columns = differences.neighbour_counts(gamma)
    inverse_diagonal = 1.0 / _plus_column_and_row(gamma, rows, columns, floor=0.0)  # γ >= 0

    def apply(r):
        return r * inverse_diagonal

    return apply


def _dct2(x):
    # [B, C, H, W] -> 2-D orthonormal DCT-II, returned transposed as [B, C, W, H].
    x = tf.signal.dct(x, type=2, norm="ortho")
    return tf.signal.dct(tf.linalg.matrix_transpose(x), type=2, norm="ortho")


def _idct2(y):
    # Inverse of _dct2: [B, C, W, H] -> [B, C, H, W].
    y = tf.signal.idct(y, type=2, norm="ortho")
    return tf.signal.idct(tf.linalg.matrix_transpose(y), type=2, norm="ortho")


def dct_matrix(n):
    """The orthonormal DCT-II matrix ``C`` (n × n, float64): ``C @ x`` is the DCT-II of
    ``x``, ``C.T @ y`` its inverse."""
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    c = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    c[0] /= np.sqrt(2.0)
    return c


def _dct2_by_convolutions(height, width, dtype):
    """``(forward, inverse)`` 2-D orthonormal DCT-II of ``[B, H, W, 1]`` images (same
    layout out) as constant-kernel convolutions, for static sizes. A VALID kernel as tall
    as the image maps each column to its DCT coefficients, laid out along the channels; a
    reshape turns those into rows, and the same along the width puts the result back in
    [H, W] order. No FFT (TFLite's GPU delegate has none) and no transpose."""

    def kernel(matrix):  # [n, 1, 1, n]: out[k] = sum_i matrix[k, i] x[i]
        # Made eagerly and captured by any graph being traced, not a constant node in it:
        # TF 2.21's oneDNN convolution aborts the process ("uint8 expected, got float")
        # on a constant filter taller than about 200 rows on CPUs without AVX2. Exports
        # still freeze it into a constant.
        with tf.init_scope():
            return tf.constant(matrix.T[:, None, None, :], dtype)

    def transform(along_h, along_w):
        def apply(x):
            y = tf.reshape(tf.nn.conv2d(x, along_h, 1, "VALID"), [-1, width, height, 1])
            return tf.reshape(tf.nn.conv2d(y, along_w, 1, "VALID"), [-1, height, width, 1])

        return apply

    ch, cw = dct_matrix(height), dct_matrix(width)
    return transform(kernel(ch), kernel(cw)), transform(kernel(ch.T), kernel(cw.T))


def dct_preconditioner(gamma, static=False):
    """``r -> (γ̄ I + DᵀD)⁻¹ r`` with γ̄ the per-system mean of γ.

    Exact inverse when γ is constant: DᵀD (Neumann) is diagonal in the 2-D DCT-II basis.
    ``static``: where the height and width are static, compute the DCT by convolutions
    with constant kernels instead of FFTs (O(H + W) work per pixel; for fixed-size
    exports, whose converters have no FFT op).
    """
    dtype = gamma.dtype
    height, width = gamma.shape[1], gamma.shape[2]
    gamma_mean = tf.reduce_mean(gamma, axis=[1, 2], keepdims=True)  # [B, 1, 1, C]
    # A floor keeps the constant mode invertible when γ̄ is 0 (then A itself is singular).
    gamma_mean = tf.maximum(gamma_mean, tf.constant(1e-6, dtype))
    if static and height is not None and width is not None:
        forward, inverse = _dct2_by_convolutions(height, width, dtype)
        # The eigenvalues as a column plus a row, added to γ̄ (not known until run time),
        # so that a static-shape export stores H + W numbers, not an H x W constant.
        rows = tf.reshape(differences.neumann_laplacian_eigenvalues_1d(height, dtype), [1, height, 1, 1])
        columns = tf.reshape(differences.neumann_laplacian_eigenvalues_1d(width, dtype), [1, 1, width, 1])
        # Channel by channel, with no [:, None]-style indexing and no one-way split: the
        # TFLite GPU delegate miscomputes the strided slices that the indexing becomes and
        # fails on a SPLIT into one.
        channels = gamma.shape[-1]

        def split(x):
            return tf.split(x, channels, axis=-1) if channels > 1 else [x]

        # γ̄ is floored at 1e-6 above.
        scales = [1.0 / _plus_column_and_row(m, rows, columns, floor=1e-6) for m in split(gamma_mean)]

        def apply_static(r):
            parts = [inverse(forward(p) * s) for p, s in zip(split(r), scales)]
            return tf.concat(parts, axis=-1) if channels > 1 else parts[0]

        return apply_static
    shape = tf.shape(gamma)
    eigenvalues = differences.neumann_laplacian_eigenvalues(shape[1], shape[2], dtype)
    inverse_eigenvalues = 1.0 / (
        tf.transpose(gamma_mean, [0, 3, 1, 2]) + tf.transpose(eigenvalues)[None, None]
    )  # [B, C, W, H]

    def apply(r):
        y = _dct2(tf.transpose(r, [0, 3, 1, 2])) * inverse_eigenvalues
        z = tf.transpose(_idct2(y), [0, 2, 3, 1])
        z.set_shape(r.shape)  # the DCT ops drop static dims, which tf.while_loop needs
        return z

    return apply


def make_preconditioner(name, gamma, static=False):
    """The preconditioner ``name`` ("jacobi" or "dct") for the system with this gamma;
    ``static``: the DCT by convolutions where the size is static (no FFT op)."""
    if name == "jacobi":
        return jacobi_preconditioner(gamma)
    if name == "dct":
        return dct_preconditioner(gamma, static=static)
    raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {name!r}")


def pcg_init(apply_a, precondition, b, x0):
    """Initial state ``(x, r, p, rz)`` of PCG started at ``x0``."""
    r = b - apply_a(x0)
    z = precondition(r)
    return x0, r, z, _dot(r, z)


def pcg_step(apply_a, precondition, x, r, p, rz, floor=None):
    """One PCG iteration on the state ``(x, r, p, rz)``; returns the next state.
    ``floor``: the least denominator of the step sizes (default: the dtype's tiny)."""
    ap = apply_a(p)
    alpha = _safe_divide(rz, _dot(p, ap), floor)
    x = x + alpha * p
    r = r - alpha * ap
    z = precondition(r)
    rz_next = _dot(r, z)
    p = z + _safe_divide(rz_next, rz, floor) * p
    return x, r, p, rz_next


def relative_residual(r, b):
    """``‖r‖ / ‖b‖`` per system, shape ``[B, 1, 1, C]`` (0 where both are 0)."""
    return tf.math.divide_no_nan(tf.sqrt(_dot(r, r)), tf.sqrt(_dot(b, b)))


def pcg(apply_a, precondition, b, x0, iterations, tolerance):
    """PCG in a ``tf.while_loop``.

    Stops after ``iterations`` steps or as soon as every system has
    ``‖r‖ <= tolerance ‖b‖``. Returns ``(x, steps_taken, relative_residual)``.
    """
    x, r, p, rz = pcg_init(apply_a, precondition, b, x0)
    threshold = tf.cast(tolerance, b.dtype) ** 2 * _dot(b, b)

    def not_done(i, x, r, p, rz):
        return tf.logical_and(i < iterations, tf.reduce_any(_dot(r, r) > threshold))

    def body(i, x, r, p, rz):
        return (i + 1,) + pcg_step(apply_a, precondition, x, r, p, rz)

    steps, x, r, p, rz = tf.while_loop(
        not_done, body, (tf.constant(0), x, r, p, rz), maximum_iterations=iterations
    )
    return x, steps, relative_residual(r, b)


def pcg_unrolled(apply_a, precondition, b, x0, iterations):
    """Exactly ``iterations`` PCG steps as straight-line ops (no loop, no early stop).
    In float32, the step sizes' denominators are floored at ``FLOAT16_SAFE_FLOOR``, so
    that the iterations after convergence stay finite when a GPU delegate runs the model
    in float16."""
    floor = FLOAT16_SAFE_FLOOR if b.dtype == tf.float32 else None
    x, r, p, rz = pcg_init(apply_a, precondition, b, x0)
    for _ in range(iterations):
        x, r, p, rz = pcg_step(apply_a, precondition, x, r, p, rz, floor)
    return x
