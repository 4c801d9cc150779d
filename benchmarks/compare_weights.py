"""Candidate weights of one denoiser side by side, on held-out training images.

    python benchmarks/compare_weights.py denoise_blind checkpoints/denoise_ema/model_ema.keras
    python benchmarks/compare_weights.py denoise_blind --bm3d --limit 20 --sigmas 10 20 30 40 50 55 60 65

Picks a validation subset of a set (default: 40 train400 images, every 10th from the
6th, so no test image chooses between weights), adds the evaluation protocol's noise
(its own seed, 7, so these noisy images are not the benchmark's), runs every model in
float32 on the same noisy images, and prints mean PSNR per σ to 3 decimals with each
model's difference to the first one. ``--bm3d`` adds BM3D on the same noisy images as a
last row (its difference is minus the first model's lead over it).
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import import_bm3d, markdown_table  # noqa: E402

from deepam_tf.data import splits  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="preset names or .keras files; the first is the reference")
    parser.add_argument("--set", default="train400")
    parser.add_argument("--every", type=int, default=splits.DENOISE_VALIDATION["every"], help="every Nth image")
    parser.add_argument("--first", type=int, default=splits.DENOISE_VALIDATION["first"],
                        help="index of the first image taken")
    parser.add_argument("--limit", type=int, default=splits.DENOISE_VALIDATION["limit"],
                        help="at most this many images")
    parser.add_argument("--seed", type=int, default=7, help="noise seed (the protocol's default_rng([seed, index]))")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[15, 25, 50])
    parser.add_argument("--bm3d", action="store_true", help="add BM3D on the same noisy images")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    if args.bm3d:
        import_bm3d(parser, "leave out --bm3d")

    from deepam_tf.data import data_dir, list_images
    from deepam_tf.evaluation import PROTOCOL, model_restore_fn, noisy_version, read_gray
    from deepam_tf.metrics import psnr
    from deepam_tf.models import load_preset

    models = [load_preset(name, dtype="float32") for name in args.models]
    for name, model in zip(args.models, models):
        if not getattr(model, "noise_level_input", False):
            raise SystemExit(f"{name} takes no noise level; compare noise-level-conditioned denoisers")
    folder = os.path.join(data_dir(args.data_dir), "denoise", args.set)
    paths = splits.denoise_validation(list_images(folder), args.first, args.every, args.limit)
    if not paths:
        raise SystemExit(f"no images selected from {folder}")
    clean = [read_gray(path) for path in paths]
    print(f"{args.set}: {len(paths)} images (every {args.every}th from index {args.first}), "
          f"noise seed {args.seed}; protocol: {PROTOCOL}")
    restorers = [model_restore_fn(model) for model in models]
    names = list(args.models)
    if args.bm3d:
        from denoise import bm3d_restore

        restorers.append(bm3d_restore)
        names.append("BM3D")
    means = np.zeros((len(restorers), len(args.sigmas)))
    for j, sigma in enumerate(args.sigmas):
        noisy = [noisy_version(c, sigma, args.seed, i) for i, c in enumerate(clean)]
        for i, restore in enumerate(restorers):
            means[i, j] = np.mean([psnr(c, np.clip(restore(n, sigma), 0, 1)) for c, n in zip(clean, noisy)])
    header = ["weights"] + [f"σ={s:g}" for s in args.sigmas] + [f"Δ σ={s:g}" for s in args.sigmas]
    rows = [[name] + [f"{m:.3f}" for m in means[i]] + [f"{d:+.3f}" for d in means[i] - means[0]]
            for i, name in enumerate(names)]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
