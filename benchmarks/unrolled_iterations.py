"""How many unrolled PCG iterations the TFLite form needs on trained weights.

    python benchmarks/unrolled_iterations.py --model denoise_blind --set set12 \
        --preconditioners dct jacobi --iterations 3 5 8 10 15 20 30

The TFLite export replaces each stage's solve (DCT-preconditioned PCG to a relative
residual of 1e-4) by a fixed number of PCG iterations with no loop op
(``deepam_tf.export.tflite.static_copy``). This runs that form, in Keras, on the set's
images center-cropped to the TFLite input size, for each σ, preconditioner and
iteration count, and prints the mean PSNR, its loss against the converged model, and
the largest pixel difference from the converged output (0-255 scale, before clipping).
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import markdown_table  # noqa: E402


def center_crop(image, size):
    top, left = (image.shape[0] - size[0]) // 2, (image.shape[1] - size[1]) // 2
    if top < 0 or left < 0:
        raise ValueError(f"image {image.shape} is smaller than the crop {size}")
    return image[top: top + size[0], left: left + size[1]]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="denoise_blind", help="preset name or .keras file")
    parser.add_argument("--set", default="set12")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[15, 25, 50])
    parser.add_argument("--iterations", type=int, nargs="+", default=[3, 5, 8, 10, 20, 30])
    parser.add_argument("--preconditioners", nargs="+", default=["dct", "jacobi"])
    parser.add_argument("--size", type=int, nargs=2, default=None, help="crop (default: the TFLite size)")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)

    from deepam_tf.data import data_dir, list_images
    from deepam_tf.evaluation import PROTOCOL, noisy_version, read_gray
    from deepam_tf.export.tflite import DEFAULT_ITERATIONS, DEFAULT_SIZE, static_copy
    from deepam_tf.metrics import psnr
    from deepam_tf.models import load_preset
    from deepam_tf.restore import run_denoiser

    size = tuple(args.size or DEFAULT_SIZE)
    model = load_preset(args.model)
    unrolled = {(p, n): static_copy(model, n, p) for p in args.preconditioners for n in args.iterations}
    paths = list_images(os.path.join(data_dir(args.data_dir), "denoise", args.set))
    print(f"{args.model} on {args.set} ({len(paths)} images, center {size[0]}x{size[1]}); "
          f"TFLite default {DEFAULT_ITERATIONS} iterations; protocol: {PROTOCOL}")
    converged = {}
    psnrs = {(key, sigma): [] for key in unrolled for sigma in args.sigmas}
    worst = {(key, sigma): 0.0 for key in unrolled for sigma in args.sigmas}
    for sigma in args.sigmas:
        values = []
        for index, path in enumerate(paths):
            clean = center_crop(read_gray(path), size)
            noisy = noisy_version(clean, sigma, 0, index)[None, :, :, None]
            reference = run_denoiser(model, noisy, sigma, tile_size=None)[0, :, :, 0]
            values.append(psnr(clean, np.clip(reference, 0, 1)))
            for key, copy in unrolled.items():
                out = run_denoiser(copy, noisy, sigma, tile_size=None)[0, :, :, 0]
                psnrs[key, sigma].append(psnr(clean, np.clip(out, 0, 1)))
                worst[key, sigma] = max(worst[key, sigma], float(np.abs(out - reference).max()) * 255)
        converged[sigma] = np.mean(values)
        print(f"σ={sigma:g} done", flush=True)
    header = ["solve"] + [f"σ={sigma:g}: PSNR (Δ; max |Δu|·255)" for sigma in args.sigmas]
    rows = [["converged (DCT PCG to 1e-4)"] + [f"{converged[sigma]:.3f}" for sigma in args.sigmas]]
    for key in unrolled:
        cells = []
        for sigma in args.sigmas:
            mean = np.mean(psnrs[key, sigma])
            cells.append(f"{mean:.3f} ({mean - converged[sigma]:+.3f}; {worst[key, sigma]:.2f})")
        rows.append([f"{key[0]} ×{key[1]}"] + cells)
    print(markdown_table(header, rows))

if __name__ == "__main__":
    main()
