"""Denoising benchmark: DeepAM against BM3D on the same noisy images, beside the paper.

    python benchmarks/denoise.py --model denoise_blind [--sets bsd68 set12]
        [--sigmas 15 25 50] [--limit N] [--data-dir DIR] [--no-bm3d] [--self-ensemble]
        [--seeds 0 1 2 3 4]
    python benchmarks/denoise.py --model 'denoise_sigma{sigma}'   # each σ's own preset

Protocol: deepam_tf.evaluation.PROTOCOL (the same as the shared baselines). BM3D is the PyPI
``bm3d`` package, ``bm3d.bm3d(noisy, sigma_psd=σ/255)``. Times are per image, in this run.
``--self-ensemble`` evaluates DeepAM+ (the 8 rotations and flips averaged); the paper's
numbers are single-pass. ``--seeds`` repeats each row over several noise draws (seed 0 is
the protocol's) and reports the means, each draw's DeepAM PSNR and their standard
deviation: how far one draw's mean, such as the paper's, can sit from another's.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import import_bm3d, markdown_table  # noqa: E402

from deepam_tf import data, evaluation  # noqa: E402
from deepam_tf.models import load_preset  # noqa: E402

PAPER = {("bsd68", 15): 31.68, ("bsd68", 25): 29.21, ("bsd68", 50): 26.24, ("set12", 25): 30.40}
BM3D_PUBLISHED = {("bsd68", 15): 31.07, ("bsd68", 25): 28.57, ("bsd68", 50): 25.62,
                  ("set12", 15): 32.37, ("set12", 25): 29.97, ("set12", 50): 26.72}


def bm3d_restore(noisy, sigma):
    import bm3d

    return bm3d.bm3d(noisy, sigma_psd=sigma / 255.0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="denoise_blind",
                        help="preset name or .keras file; '{sigma}' in it is replaced by each σ")
    parser.add_argument("--sets", nargs="+", default=["bsd68", "set12"])
    parser.add_argument("--sigmas", nargs="+", type=float, default=[15, 25, 50])
    parser.add_argument("--limit", type=int, help="first N images of each set only")
    parser.add_argument("--data-dir")
    parser.add_argument("--no-bm3d", action="store_true")
    parser.add_argument("--self-ensemble", action="store_true",
                        help="DeepAM+: average over the 8 rotations and flips (8x the time)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="noise draws to average over (default: the protocol's seed 0)")
    args = parser.parse_args()
    if not args.no_bm3d:
        import_bm3d(parser)
    restorers = {}

    def deepam(sigma):
        name = args.model.replace("{sigma}", f"{sigma:g}")
        if name not in restorers:
            restorers[name] = evaluation.model_restore_fn(load_preset(name), args.self_ensemble)
        return restorers[name]

    root = data.data_dir(args.data_dir)
    rows = []
    for name in args.sets:
        folder = os.path.join(root, "denoise", name)
        for sigma in args.sigmas:
            ours = _over_seeds(deepam(sigma), folder, sigma, args)
            row = [name, f"{sigma:g}", len(evaluation.list_images(folder)[: args.limit]),
                   f"{ours['noisy_psnr']:.2f}", f"{ours['psnr']:.3f} / {ours['ssim']:.3f}"]
            if args.no_bm3d:
                row += ["-", "-", f"{ours['seconds']:.2f}", "-"]
            else:
                theirs = _over_seeds(bm3d_restore, folder, sigma, args)
                row += [f"{theirs['psnr']:.2f} / {theirs['ssim']:.3f}",
                        f"{ours['psnr'] - theirs['psnr']:+.2f}", f"{ours['seconds']:.2f}",
                        f"{theirs['seconds']:.2f} ({theirs['seconds'] / ours['seconds']:.1f}x DeepAM)"]
            key = (name, int(sigma))
            row += [f"{PAPER[key]:.2f}" if key in PAPER else "-",
                    f"{BM3D_PUBLISHED[key]:.2f}" if key in BM3D_PUBLISHED else "-"]
            if len(args.seeds) > 1:
                row += [" ".join(f"{p:.3f}" for p in ours["per_seed"]), f"{np.std(ours['per_seed'], ddof=1):.4f}"]
            rows.append(row)
            print(" | ".join(str(c) for c in row), flush=True)
    ensemble = " with the x8 self-ensemble (DeepAM+)" if args.self_ensemble else ""
    seeds = f" Noise seeds {' '.join(map(str, args.seeds))}, means over them." if len(args.seeds) > 1 else ""
    print(f"\nModel: {args.model}{ensemble}. Protocol: {evaluation.PROTOCOL}.{seeds}\n")
    header = ["set", "σ", "images", "noisy PSNR", "DeepAM PSNR / SSIM", "BM3D PSNR / SSIM",
              "DeepAM − BM3D dB", "DeepAM s/img", "BM3D s/img", "paper DeepAM(3)", "BM3D published"]
    if len(args.seeds) > 1:
        header += ["DeepAM PSNR per seed", "std over seeds"]
    print(markdown_table(header, rows))


def _over_seeds(restore_fn, folder, sigma, args):
    """The mean row of ``evaluate_restorer`` averaged over ``args.seeds``, with each seed's
    mean PSNR as ``per_seed``."""
    means = [evaluation.evaluate_restorer(restore_fn, folder, sigma, seed=seed, limit=args.limit)[-1]
             for seed in args.seeds]
    row = {key: float(np.mean([m[key] for m in means])) for key in ("psnr", "ssim", "noisy_psnr", "seconds")}
    return {**row, "per_seed": [m["psnr"] for m in means]}


if __name__ == "__main__":
    main()
