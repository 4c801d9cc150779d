"""Handcrafted alternating minimisation (paper eq. 4), the TV baseline DeepAM learns from.

For ``min_u λ/2 ‖u − f‖² + ‖D u‖₁`` with the splitting ``v ≈ D u``:

    v ← soft_threshold(D u, 1/β)                        (proximal step of the TV prior)
    u ← (λ/β I + DᵀD)⁻¹ (λ/β f + Dᵀ v)                  (ops.reconstruct, γ = λ/β)
    β ← α β                                             (β-continuation)
"""

import tensorflow as tf

from deepam_tf import ops


def soft_threshold(x, threshold):
    """``sign(x) max(|x| − threshold, 0)``: the proximal map of ``threshold·|x|``."""
    return tf.sign(x) * tf.nn.relu(tf.abs(x) - threshold)


def classic_am(f, lam=12.0, beta=1.0, alpha=2.0, iterations=10, *, preconditioner="dct"):
    """Anisotropic-TV denoising by alternating minimisation with β-continuation.

    Args:
        f: degraded image ``[B, H, W, C]`` (or ``[H, W]`` / ``[H, W, C]``), float.
        lam: data-fidelity weight λ (larger keeps more of f).
        beta: initial penalty β of the splitting ``v ≈ D u``.
        alpha: continuation factor, ``β ← α β`` after each iteration (>= 1).
        iterations: number of (v, u) updates.
        preconditioner: PCG preconditioner of the u-step.

    Returns:
        u with f's shape; float64 when f is float64, else float32 (an integer f is cast,
        not rescaled).

    Example:
        >>> noisy = tf.random.uniform([1, 64, 64, 1])
        >>> restored = classic_am(noisy, lam=12.0, beta=1.0, alpha=2.0, iterations=10)

    Reference: Kim et al., CVPR 2017, eq. (4) and Fig. 2(b).
    """
    f = tf.convert_to_tensor(f)
    if f.dtype not in (tf.float32, tf.float64):
        f = tf.cast(f, tf.float32)
    rank = f.shape.rank
    if rank not in (2, 3, 4):
        raise ValueError(f"f must have shape [H, W], [H, W, C] or [B, H, W, C], got {f.shape}")
    if lam <= 0 or beta <= 0 or alpha < 1 or iterations < 1:
        raise ValueError(
            f"need lam > 0, beta > 0, alpha >= 1, iterations >= 1; got "
            f"{lam}, {beta}, {alpha}, {iterations}"
        )
    batched = f
    if rank == 2:
        batched = f[None, :, :, None]
    elif rank == 3:
        batched = f[None]
    u = batched
    for _ in range(iterations):
        v = soft_threshold(ops.gradient(u), 1.0 / beta)
        gamma = tf.fill(tf.shape(batched), tf.cast(lam / beta, batched.dtype))
        u = ops.reconstruct(batched, v, gamma, preconditioner=preconditioner, tolerance=1e-5)
        beta *= alpha
    return tf.reshape(u, tf.shape(f))
