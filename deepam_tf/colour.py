"""The orthonormal opponent colour transform, for denoising RGB with a grayscale model.

The rows (R+G+B)/√3, (R−B)/√2 and (R−2G+B)/√6 are orthonormal, so i.i.d. Gaussian noise
of level σ in R, G and B stays i.i.d. Gaussian in the opponent channels (colour BM3D
denoises in the same space). Scaled into [0, 1], the range the grayscale model was
trained on, the channels are Y = (R+G+B)/3, C1 = (R−B)/2 + 1/2 and C2 = (R−2G+B)/4 + 1/2,
with noise levels σ/√3, σ/√2 and σ√6/4. Most of an image's structure lands in Y, at the
lowest noise level, and the chroma channels are smooth, so denoising Y, C1, C2 one by one
beats denoising R, G, B one by one (``benchmarks/colour.py``).
"""

import numpy as np

OPPONENT = np.array([[1 / 3, 1 / 3, 1 / 3], [1 / 2, 0, -1 / 2], [1 / 4, -1 / 2, 1 / 4]])
OFFSET = np.array([0.0, 0.5, 0.5])
NOISE_SCALE = np.sqrt(np.sum(OPPONENT**2, axis=1))  # σ of each channel per unit σ in RGB
INVERSE = np.linalg.inv(OPPONENT)


def to_opponent(rgb):
    """``[..., 3]`` RGB in [0, 1] -> the scaled opponent channels Y, C1, C2 in [0, 1]."""
    return (np.asarray(rgb) @ OPPONENT.T + OFFSET).astype(np.float32)


def from_opponent(opponent):
    """The inverse of :func:`to_opponent`."""
    return ((np.asarray(opponent) - OFFSET) @ INVERSE.T).astype(np.float32)
