"""PCG benchmark: convergence per preconditioner and γ regime, time per solve, and a
direct sparse solve of the same system for scale (the paper's Fig. 5 compares PCG with
MATLAB's backslash).

    python benchmarks/pcg.py
"""

import os
import sys

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import tensorflow as tf

tf.get_logger().setLevel("ERROR")

sys.path.insert(0, os.path.dirname(__file__))
from common import best_time, markdown_table, test_image  # noqa: E402

from deepam_tf import ops  # noqa: E402


def problem(size, gamma_regime, seed=0):
    """f = noisy natural image, v = its soft-thresholded gradients, γ by regime."""
    rng = np.random.default_rng(seed)
    clean = test_image(size)
    f = clean + rng.normal(0, 25 / 255, clean.shape).astype(np.float32)
    f = tf.constant(f[None, :, :, None])
    g = ops.gradient(f)
    v = tf.sign(g) * tf.nn.relu(tf.abs(g) - 0.05)
    if gamma_regime == "varying":
        # Large γ (trust f) in flat regions, small at edges, spanning 0.01 .. 1.
        edges = tf.sqrt(tf.reduce_sum(ops.gradient(tf.constant(clean[None, :, :, None])) ** 2, -1, keepdims=True))
        gamma = 0.01 + 0.99 * tf.exp(-edges / 0.02)
    else:
        gamma = tf.fill(tf.shape(f), float(gamma_regime))
    return f, v, gamma


def iterations_to(f, v, gamma, preconditioner, tolerance=1e-4, cap=2000):
    b = gamma * f + ops.gradient_adjoint(v)
    apply_a = ops.pcg.system_operator(gamma)
    precondition = ops.pcg.make_preconditioner(preconditioner, gamma)
    run = tf.function(lambda: ops.pcg.pcg(apply_a, precondition, b, f, cap, tolerance))
    _, steps, residual = run()
    return int(steps), float(tf.reduce_max(residual))


def residual_after(f, v, gamma, preconditioner, iterations):
    b = gamma * f + ops.gradient_adjoint(v)
    apply_a = ops.pcg.system_operator(gamma)
    precondition = ops.pcg.make_preconditioner(preconditioner, gamma)
    _, _, residual = tf.function(
        lambda: ops.pcg.pcg(apply_a, precondition, b, f, iterations, 0.0)
    )()
    return float(tf.reduce_max(residual))


def solve_times(size, preconditioner, iterations):
    f, v, gamma = problem(size, "varying")
    options = dict(iterations=iterations, tolerance=0.0, preconditioner=preconditioner)
    forward = tf.function(lambda f, v, g: ops.reconstruct(f, v, g, **options))

    @tf.function
    def forward_backward(f, v, g):
        with tf.GradientTape() as tape:
            tape.watch([f, v, g])
            u = ops.reconstruct(f, v, g, **options)
        return tape.gradient(u, [f, v, g])

    t_fwd = best_time(lambda: forward(f, v, gamma).numpy())
    t_both = best_time(lambda: [t.numpy() for t in forward_backward(f, v, gamma)])
    return t_fwd, t_both


def sparse_solve_time(size):
    f, v, gamma = problem(size, "varying")
    h, w = size
    def diff(n):
        return scipy.sparse.diags([-np.ones(n), np.ones(n - 1)], [0, 1], format="lil")
    dx, dy = diff(w), diff(h)
    dx[w - 1, w - 1] = 0
    dy[h - 1, h - 1] = 0
    big_dx = scipy.sparse.kron(scipy.sparse.eye(h), dx.tocsr())
    big_dy = scipy.sparse.kron(dy.tocsr(), scipy.sparse.eye(w))
    a = scipy.sparse.diags(gamma.numpy().ravel()) + big_dx.T @ big_dx + big_dy.T @ big_dy
    a = a.tocsc()
    b = (gamma * f + ops.gradient_adjoint(v)).numpy().ravel()
    return best_time(lambda: scipy.sparse.linalg.spsolve(a, b), repeats=3, warmup=0)


def main():
    regimes = ["0.01", "0.1", "1", "varying"]
    print("## Iterations to relative residual 1e-4 (256x256, noisy camera, warm start at f)\n")
    rows = []
    for name in ops.PRECONDITIONERS:
        row = [name]
        for regime in regimes:
            steps, _ = iterations_to(*problem((256, 256), regime), name)
            row.append(steps)
        for regime in regimes:
            row.append(f"{residual_after(*problem((256, 256), regime), name, 10):.1e}")
        rows.append(row)
    print(markdown_table(
        ["preconditioner"] + [f"γ={r}" for r in regimes] + [f"res@10 γ={r}" for r in regimes], rows
    ))

    print("\n## Time per solve, γ varying, fixed iteration count (ms)\n")
    rows = []
    for size in [(256, 256), (1024, 1024)]:
        for name in ops.PRECONDITIONERS:
            for iterations in (10,):
                t_fwd, t_both = solve_times(size, name, iterations)
                rows.append([f"{size[0]}x{size[1]}", name, iterations, f"{t_fwd * 1e3:.1f}",
                             f"{t_both * 1e3:.1f}", f"{t_fwd / iterations * 1e3:.2f}"])
    print(markdown_table(["size", "preconditioner", "iterations", "forward", "forward+backward",
                          "ms per iteration"], rows))

    t_sparse = sparse_solve_time((256, 256))
    t_pcg, _ = solve_times((256, 256), "dct", 10)
    print(f"\n## Direct sparse solve (scipy spsolve, SuperLU) vs PCG, 256x256, γ varying\n")
    print(markdown_table(["method", "ms", "ratio"], [
        ["scipy.sparse.linalg.spsolve", f"{t_sparse * 1e3:.1f}", "1.0"],
        ["PCG, DCT, 10 iterations", f"{t_pcg * 1e3:.1f}", f"{t_sparse / t_pcg:.1f}x faster"],
    ]))


if __name__ == "__main__":
    main()
