"""Benchmark tables: per-image and mean PSNR / SSIM of a denoiser on an image folder
(:func:`evaluate`, also ``deepam_tf.evaluate`` and ``deepam evaluate``).

Protocol (as in the shared baselines): clean 8-bit gray image scaled to [0, 1]; noise
N(0, (σ/255)²) drawn from ``numpy.random.default_rng([seed, index])``, not clipped; the
restored image clipped to [0, 1]; PSNR and SSIM with data_range 1 against the clean image.
Colour files are converted to gray (luminance) unless ``colour=True``, which keeps RGB and
measures PSNR over all three channels and SSIM averaged over them.
"""

import csv
import os
import sys
import time

import numpy as np

from deepam_tf import metrics
from deepam_tf.data import list_images
from deepam_tf.image_io import as_unit_float, read_image_file, rgb_to_gray

PROTOCOL = (
    "clean image in [0,1] (colour files as gray luminance unless evaluated in colour: then "
    "PSNR over all three channels, SSIM averaged over them); noise N(0,(σ/255)²) from numpy "
    "default_rng([seed, index]), not clipped; output clipped to [0,1]; PSNR/SSIM with data_range 1"
)


def _read_unit(path):
    """An 8- or 16-bit image file, or a floating-point TIFF in [0, 1], as float32 in [0, 1]."""
    image = as_unit_float(read_image_file(path))
    if not np.all(np.isfinite(image)) or image.min() < 0 or image.max() > 1:  # a float TIFF
        raise ValueError(f"{path}: a clean floating-point image must have finite values in "
                         f"[0, 1], got [{image.min():g}, {image.max():g}]")
    return image


def read_gray(path):
    """An image file as float32 gray in [0, 1] (8- or 16-bit)."""
    image = _read_unit(path)
    return rgb_to_gray(image) if image.ndim == 3 else image


def read_rgb(path):
    """An RGB image file as float32 ``[H, W, 3]`` in [0, 1]; a gray file is refused."""
    image = _read_unit(path)
    if image.ndim != 3:
        raise ValueError(f"{path} is a gray image; a colour evaluation needs RGB files")
    return image


def noisy_version(clean, sigma, seed, index):
    """The protocol's noisy image for image ``index``."""
    rng = np.random.default_rng([seed, index])
    return clean + rng.normal(0.0, sigma / 255.0, clean.shape).astype(np.float32)


def evaluate(model, images, sigma, *, seed=0, output=None, overwrite=False, self_ensemble=False,
             data_dir=None, limit=None, progress=False, colour=False, precision=None):
    """Per-image and mean PSNR / SSIM of a DeepAM denoiser under :data:`PROTOCOL`.

    Args:
        model: preset name, ``.keras`` path or a loaded :class:`deepam_tf.DeepAM`;
            ``"auto"`` (as in :func:`deepam_tf.denoise`): the preset specialised to
            ``sigma`` if one is shipped, else ``denoise_blind``; with ``colour``,
            ``denoise_blind`` (the protocol's noise is independent across R, G and B, so
            the image is denoised through its opponent channels).
        images: an image folder, or the name of a set under ``DATA/denoise/``
            (``"bsd68"``, ``"set12"``; ``DATA`` from ``data_dir``, ``$DEEPAM_DATA`` or
            ``../shared/data``).
        sigma: noise level on the 0–255 scale.
        seed: the noise of image ``i`` is drawn from ``default_rng([seed, i])``.
        output: if given, writes ``output.csv`` and ``output.md`` (refused before any
            work if they exist, unless ``overwrite``).
        self_ensemble: the x8 self-ensemble (DeepAM+).
        colour: evaluate RGB files in colour (see :func:`deepam_tf.denoise`); otherwise
            colour files are converted to gray first.
        precision: ``"bfloat16"`` or ``"float32"`` (see :func:`deepam_tf.denoise`).
        limit: only the first ``limit`` images (sorted by name).
        progress: a Keras progress bar with the running mean PSNR.

    Returns:
        The rows of :func:`evaluate_restorer`, the last one the mean.

    Example:
        >>> rows = deepam_tf.evaluate("denoise_blind", "set12", 25)  # doctest: +SKIP
        >>> rows[-1]["psnr"]  # doctest: +SKIP
        30.38...
    """
    from deepam_tf.data import data_dir as default_data_dir
    from deepam_tf.restore import check_sigma, load_for_task

    sigma = check_sigma(sigma)
    model = evaluated_model(model, sigma, colour)
    images = os.fspath(images)
    folder = images
    if not (os.path.isdir(images) or os.sep in images):
        sets = os.path.join(default_data_dir(data_dir), "denoise")
        folder = os.path.join(sets, images)
        if not os.path.isdir(folder):
            there = sorted(name for name in os.listdir(sets) if os.path.isdir(os.path.join(sets, name))) \
                if os.path.isdir(sets) else []
            raise ValueError(f"no set {images!r} in {sets} (there: {', '.join(there) or 'none'}); "
                             f"or give an image folder")
    output = None if output is None else os.fspath(output)
    if output is not None and not overwrite:
        for path in (output + ".csv", output + ".md"):
            if os.path.exists(path):
                raise FileExistsError(f"{path} exists; pass overwrite (--overwrite) to replace it")
    label = model if isinstance(model, str) else type(model).__name__
    loaded = load_for_task(model, "denoising", precision)
    rows = evaluate_restorer(model_restore_fn(loaded, self_ensemble, colour), folder, sigma, seed=seed,
                             limit=limit, progress=progress, colour=colour)
    if output is not None:
        ensemble = " (x8 self-ensemble)" if self_ensemble else ""
        ensemble += " in bfloat16" if precision == "bfloat16" else ""
        kind = "RGB" if colour else "gray"
        write_tables(rows, output, f"{label}{ensemble} on {folder} ({kind}) at sigma {sigma:g}")
    return rows


def evaluated_model(model, sigma, colour=False):
    """The model :func:`evaluate` runs for ``model`` at ``sigma``: ``model`` itself, or
    for ``"auto"`` the preset it stands for (see :func:`evaluate`)."""
    from deepam_tf.restore import AUTO_MODEL, blind_preset_for, opponent_level, resolve_denoiser

    if colour and isinstance(model, str) and model == AUTO_MODEL:
        # The opponent channels each have their own σ: the blind preset for the noisiest.
        return blind_preset_for(opponent_level(sigma))
    return resolve_denoiser(model, sigma)


def evaluate_restorer(restore_fn, folder, sigma, *, seed=0, limit=None, progress=False,
                      colour=False):
    """Runs ``restore_fn(noisy, sigma) -> restored`` (any denoiser, e.g. BM3D) on every
    image of ``folder``, gray or (``colour``) RGB
    (``progress``: a Keras progress bar with the running mean PSNR).

    Returns a list of rows ``{"image", "psnr", "ssim", "noisy_psnr", "seconds"}`` and
    a final ``"mean"`` row.
    """
    rows = []
    paths = list_images(folder)[:limit]
    read = read_rgb if colour else read_gray
    for path in paths:  # a bad file stops the run before any work, naming the file
        read(path)
    if progress:
        import keras

        # Keras draws its bar with terminal escapes even into a log file: there, one line.
        bar = keras.utils.Progbar(len(paths), stateful_metrics=["mean PSNR"],
                                  verbose=1 if sys.stdout.isatty() else 2)
    for index, path in enumerate(paths):
        clean = read(path)
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


def model_restore_fn(model, self_ensemble=False, colour=False):
    """``restore_fn`` for :func:`evaluate_restorer` from a DeepAM denoiser (``self_ensemble``: the
    8-transform average, see :mod:`deepam_tf.models.ensemble`; ``colour``: RGB images, by
    ``deepam_tf.denoise``'s opponent channels)."""
    from deepam_tf.restore import denoise, run_denoiser

    if colour:
        return lambda noisy, sigma: denoise(noisy, sigma, model=model, self_ensemble=self_ensemble)
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
