"""Forward-difference operator D, its exact adjoint Dᵀ and the Neumann Laplacian DᵀD.

Images are ``[B, H, W, C]``; every channel is treated independently. ``D`` maps an
image to ``[B, H, W, 2C]``: the first C channels hold horizontal differences
``u[:, :, j+1] - u[:, :, j]`` (0 in the last column), the last C the vertical ones
(0 in the last row). Only slices and constant pads are used, so the functions work
with dynamic shapes, under XLA and in static-shape TFLite exports.
"""

import tensorflow as tf


def _forward_difference(u, axis):
    # axis 1 (rows) or 2 (columns) of a rank-4 tensor; the last difference is 0.
    if axis == 2:
        d = u[:, :, 1:, :] - u[:, :, :-1, :]
        return tf.pad(d, [[0, 0], [0, 0], [0, 1], [0, 0]])
    d = u[:, 1:, :, :] - u[:, :-1, :, :]
    return tf.pad(d, [[0, 0], [0, 1], [0, 0], [0, 0]])


def _forward_difference_adjoint(p, axis):
    # Adjoint of _forward_difference: (Dᵀp)_j = p_{j-1} - p_j, with p_{-1} = 0 and the
    # last entry of p ignored (it multiplies the zero row of D).
    if axis == 2:
        q = p[:, :, :-1, :]
        return tf.pad(q, [[0, 0], [0, 0], [1, 0], [0, 0]]) - tf.pad(
            q, [[0, 0], [0, 0], [0, 1], [0, 0]]
        )
    q = p[:, :-1, :, :]
    return tf.pad(q, [[0, 0], [1, 0], [0, 0], [0, 0]]) - tf.pad(
        q, [[0, 0], [0, 1], [0, 0], [0, 0]]
    )


def _checked(t, name, even_channels=False):
    """``t`` as a tensor; ValueError unless it is a rank-4 float tensor (with an even
    channel count for ``even_channels``)."""
    t = tf.convert_to_tensor(t)
    if not t.dtype.is_floating:
        raise ValueError(f"{name} must be a float tensor (float32 or float64 for the solve), got {t.dtype.name}")
    if t.shape.rank != 4:
        raise ValueError(f"{name} must have shape [B, H, W, C], got rank {t.shape.rank}")
    if even_channels and t.shape[-1] is not None and t.shape[-1] % 2:
        raise ValueError(f"{name} must have 2C channels (x then y differences), got {t.shape[-1]}")
    return t


def gradient(u):
    """Forward differences ``D u``: ``[B, H, W, C] -> [B, H, W, 2C]`` (x then y)."""
    u = _checked(u, "u")
    return tf.concat([_forward_difference(u, 2), _forward_difference(u, 1)], axis=-1)


def gradient_adjoint(v):
    """Exact adjoint ``Dᵀ v`` of :func:`gradient`: ``[B, H, W, 2C] -> [B, H, W, C]``.

    ``<gradient(u), v> == <u, gradient_adjoint(v)>`` for all u, v.
    """
    vx, vy = tf.split(_checked(v, "v", even_channels=True), 2, axis=-1)
    return _forward_difference_adjoint(vx, 2) + _forward_difference_adjoint(vy, 1)


def neumann_laplacian(u):
    """``DᵀD u``: the positive semi-definite (negated) Laplacian with Neumann boundaries."""
    u = _checked(u, "u")
    return _forward_difference_adjoint(_forward_difference(u, 2), 2) + (
        _forward_difference_adjoint(_forward_difference(u, 1), 1)
    )


def neighbour_counts(u):
    """The diagonal of ``DᵀD`` (each pixel's number of 4-neighbours: 2, 3 or 4) as a
    column ``[1, H, 1, 1]`` plus a row ``[1, 1, W, 1]``, the neighbours along each axis
    (``(i > 0) + (i < n - 1)``), so a static-shape export stores H + W numbers."""
    shape = tf.shape(u)

    def along(axis):
        n = shape[axis]
        i = tf.range(n)
        count = tf.cast(i > 0, u.dtype) + tf.cast(i < n - 1, u.dtype)
        return tf.reshape(count, [1, -1, 1, 1] if axis == 1 else [1, 1, -1, 1])

    return along(1), along(2)


def neumann_laplacian_eigenvalues_1d(n, dtype):
    """Eigenvalues ``2 - 2 cos(pi k / n)`` of the 1-D Neumann Laplacian of size ``n``,
    whose eigenvectors are the DCT-II basis."""
    k = tf.cast(tf.range(n), dtype)
    return 2.0 - 2.0 * tf.cos(tf.constant(3.141592653589793, dtype) * k / tf.cast(n, dtype))


def neumann_laplacian_eigenvalues(height, width, dtype):
    """Eigenvalues of ``DᵀD`` in the 2-D DCT-II basis, shape ``[H, W]``: the sums of the
    1-D operators' (:func:`neumann_laplacian_eigenvalues_1d`)."""
    return (neumann_laplacian_eigenvalues_1d(height, dtype)[:, None]
            + neumann_laplacian_eigenvalues_1d(width, dtype)[None, :])
