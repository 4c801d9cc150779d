"""Geometric self-ensemble ("x8" test-time augmentation, as in EDSR+ / RCAN+).

The model runs on the 8 rotations and flips of its input; each output is mapped back and
the 8 are averaged. It costs 8 forward passes and usually buys a tenth of a dB or so. The
paper's DeepAM numbers are single-pass: report ensemble results as a separate row.
"""

import numpy as np

TRANSFORMS = 8
SPATIAL_INPUTS = ("image", "guidance")


def dihedral(x, k):
    """Transform ``k`` in 0..7 of ``[B, H, W, C]`` arrays: ``k % 4`` quarter turns, then a
    left-right flip when ``k >= 4``."""
    y = np.rot90(x, k % 4, axes=(1, 2))
    return y[:, :, ::-1] if k >= 4 else y


def undo_dihedral(y, k):
    """The inverse of :func:`dihedral`."""
    if k >= 4:
        y = y[:, :, ::-1]
    return np.rot90(y, -(k % 4), axes=(1, 2))


def dihedral_inputs(x, k):
    """:func:`dihedral` applied to model inputs: an array, or a dict whose ``"image"`` and
    ``"guidance"`` are transformed alike (``"noise_level"`` is left alone)."""
    if isinstance(x, dict):
        return {
            key: np.ascontiguousarray(dihedral(np.asarray(value), k)) if key in SPATIAL_INPUTS else value
            for key, value in x.items()
        }
    return np.ascontiguousarray(dihedral(np.asarray(x), k))


def self_ensemble(predict, x):
    """The mean of ``undo_dihedral(predict(dihedral(x, k)), k)`` over the 8 transforms.

    ``predict`` maps model inputs (an array or a dict with ``"image"`` and optionally
    ``"guidance"``, transformed alike, and ``"noise_level"``, left alone) to a
    ``[B, H, W, C]`` array.
    """
    total = None
    for k in range(TRANSFORMS):
        out = undo_dihedral(np.asarray(predict(dihedral_inputs(x, k)), np.float64), k)
        total = out if total is None else total + out
    return (total / TRANSFORMS).astype(np.float32)
