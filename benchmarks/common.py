"""Shared helpers of the benchmark scripts."""

import time

import numpy as np


def best_time(fn, repeats=5, warmup=1):
    """Best wall time of ``fn()`` in seconds over ``repeats`` runs, after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def import_bm3d(parser, flag="pass --no-bm3d"):
    """The PyPI ``bm3d`` module, or the argument parser's error saying how to get it
    (before any work)."""
    try:
        import bm3d
    except ImportError:
        parser.error(f"BM3D is the PyPI package bm3d: python -m pip install -e '.[bench]', or {flag}")
    return bm3d


def markdown_table(header, rows):
    """A Markdown table as a string."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def test_image(size):
    """A natural grayscale test image (skimage camera, tiled/cropped) of ``size`` (H, W)."""
    import skimage.data

    camera = skimage.data.camera().astype(np.float32) / 255.0
    reps = (-(-size[0] // 512), -(-size[1] // 512))
    return np.tile(camera, reps)[: size[0], : size[1]]
