"""Benchmark tables: per-image and mean PSNR / SSIM of a denoiser on an image folder.

Protocol (as in the shared baselines): clean 8-bit gray image scaled to [0, 1]; noise
N(0, (σ/255)²) drawn from ``numpy.random.default_rng([seed, index])``, not clipped; the
restored image clipped to [0, 1]; PSNR and SSIM with data_range 1 against the clean image.
"""

import csv
import os
import time

import numpy as np

from deepam_tf import metrics
from deepam_tf.data import list_images
from deepam_tf.image_io import read_image_file, rgb_to_gray

PROTOCOL = (
    "clean image in [0,1]; noise N(0,(σ/255)²) from numpy default_rng([seed, index]), "
    "not clipped; output clipped to [0,1]; PSNR/SSIM with data_range 1"
)


def read_gray(path):
    """An image file as float32 gray in [0, 1] (8- or 16-bit)."""
    image = read_image_file(path)
    image = image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    if image.ndim == 3:
        image = rgb_to_gray(image)
    return image


def noisy_version(clean, sigma, seed, index):
    """The protocol's noisy image for image ``index``."""
    rng = np.random.default_rng([seed, index])
    return clean + rng.normal(0.0, sigma / 255.0, clean.shape).astype(np.float32)


def evaluate(restore_fn, folder, sigma, *, seed=0, limit=None, progress=False):
    """Runs ``restore_fn(noisy, sigma) -> restored`` on every image of ``folder``
    (``progress``: a Keras progress bar with the running mean PSNR).

    Returns a list of rows ``{"image", "psnr", "ssim", "noisy_psnr", "seconds"}`` and
    a final ``"mean"`` row.
    """
    rows = []
    paths = list_images(folder)[:limit]
    for path in paths:  # a bad file stops the run before any work, naming the file
        read_gray(path)
    if progress:
        import keras

        bar = keras.utils.Progbar(len(paths), stateful_metrics=["mean PSNR"])
    for index, path in enumerate(paths):
        clean = read_gray(path)
        noisy = noisy_version(clean, sigma, seed, index)
        start = time.perf_counter()
        restored = np.clip(np.asarray(restore_fn(noisy, sigma), np.float32), 0.0, 1.0)
        seconds = time.perf_counter() - start
        rows.append({
            "image": os.path.basename(path),
            "psnr": metrics.psnr(clean, restored),
            "ssim": metrics.ssim(clean, restored),
            "noisy_psnr": metrics.psnr(clean, np.clip(noisy, 0, 1)),
            "seconds": seconds,
        })
        if progress:
            bar.add(1, [("mean PSNR", float(np.mean([r["psnr"] for r in rows])))])
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr", "ssim", "noisy_psnr", "seconds")}
    rows.append({"image": "mean", **mean})
    return rows


def model_restore_fn(model, self_ensemble=False):
    """``restore_fn`` for :func:`evaluate` from a DeepAM denoiser (``self_ensemble``: the
    8-transform average, see :mod:`deepam_tf.models.ensemble`)."""
    from deepam_tf.restore import run_denoiser

    return lambda noisy, sigma: run_denoiser(
        model, noisy[None, :, :, None], sigma, self_ensemble=self_ensemble
    )[0, :, :, 0]


def write_tables(rows, path_stem, title):
    """Writes ``path_stem.csv`` and ``path_stem.md``."""
    fields = ["image", "psnr", "ssim", "noisy_psnr", "seconds"]
    with open(path_stem + ".csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    with open(path_stem + ".md", "w") as handle:
        handle.write(f"# {title}\n\nProtocol: {PROTOCOL}.\n\n")
        handle.write("| image | PSNR dB | SSIM | noisy PSNR dB | s |\n|---|---|---|---|---|\n")
        for r in rows:
            handle.write(
                f"| {r['image']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['noisy_psnr']:.2f} | {r['seconds']:.2f} |\n"
            )
