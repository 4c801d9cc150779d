"""Dense reference operators for small images (test helper)."""

import numpy as np


def difference_matrix(n):
    d = np.zeros((n, n))
    for j in range(n - 1):
        d[j, j], d[j, j + 1] = -1.0, 1.0
    return d


def gradient_matrices(height, width):
    """Dense Dx, Dy acting on a row-major flattened H×W image."""
    dx = np.kron(np.eye(height), difference_matrix(width))
    dy = np.kron(difference_matrix(height), np.eye(width))
    return dx, dy


def solve(f, v, gamma):
    """Dense solve of (Γ + DᵀD) u = Γ f + Dᵀ v for every image and channel (numpy)."""
    b, h, w, c = f.shape
    dx, dy = gradient_matrices(h, w)
    laplacian = dx.T @ dx + dy.T @ dy
    u = np.zeros_like(f)
    for i in range(b):
        for k in range(c):
            g = np.diag(gamma[i, :, :, k].ravel())
            rhs = g @ f[i, :, :, k].ravel() + dx.T @ v[i, :, :, k].ravel()
            rhs += dy.T @ v[i, :, :, c + k].ravel()
            u[i, :, :, k] = np.linalg.solve(g + laplacian, rhs).reshape(h, w)
    return u
