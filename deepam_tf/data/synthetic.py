"""A small synthetic RGB-D scene, for tests and tutorials that must run without the
benchmark data."""

import numpy as np


def depth_scene(size=128, seed=0, shapes=12):
    """An aligned ``(depth, rgb)`` pair: slanted planes and discs in front of a slanted
    background, each object with its own textured colour.

    Depth edges coincide with colour edges, as in a real RGB-D capture, and the colour
    also has edges (texture) where the depth has none, so a guided method must learn
    which colour edges to trust.

    Returns:
        ``depth`` ``[size, size]`` uint8 (the [0, 255] depth-SR protocol) and ``rgb``
        ``[size, size, 3]`` uint8.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    depth = 40 + 60 * y + 20 * x
    rgb = np.empty((size, size, 3))
    rgb[:] = rng.uniform(0.2, 0.8, 3)
    for _ in range(shapes):
        cy, cx = rng.uniform(0.1, 0.9, 2)
        if rng.random() < 0.5:
            radius = rng.uniform(0.06, 0.2)
            mask = (y - cy) ** 2 + (x - cx) ** 2 < radius**2
        else:
            hy, hx = rng.uniform(0.05, 0.2, 2)
            mask = (np.abs(y - cy) < hy) & (np.abs(x - cx) < hx)
        gy, gx = rng.uniform(-40, 40, 2)
        depth = np.where(mask, rng.uniform(90, 220) + gy * (y - cy) + gx * (x - cx), depth)
        colour = rng.uniform(0, 1, 3)
        stripes = 0.15 * np.sin(2 * np.pi * rng.uniform(3, 12) * (x * np.cos(cy * 7) + y * np.sin(cx * 7)))
        rgb = np.where(mask[..., None], np.clip(colour + stripes[..., None], 0, 1), rgb)
    rgb = np.clip(rgb + rng.normal(0, 0.01, rgb.shape), 0, 1)
    return np.clip(np.round(depth), 0, 255).astype(np.uint8), np.round(rgb * 255).astype(np.uint8)
