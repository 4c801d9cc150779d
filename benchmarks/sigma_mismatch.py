"""What a wrong noise level costs a noise-level-conditioned denoiser.

    python benchmarks/sigma_mismatch.py --model denoise_blind --set set12
    python benchmarks/sigma_mismatch.py --set train400 --every 10 --limit 40 \
        --ratios 0.94 0.97 1 1.03 1.06 --decimals 3     # finer, on training images

For each true σ, the images get noise at that σ (the evaluation protocol's noise), and
the model is told ratio × σ for each ratio, and the σ that ``deepam_tf.denoise(...,
sigma=None)`` estimates per image (wavelet MAD, ``deepam_tf.restore.estimate_sigma``).
Prints mean PSNR per told σ, its loss against the true σ, and the mean estimate.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import markdown_table  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="denoise_blind", help="preset name or .keras file")
    parser.add_argument("--set", default="set12")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[15, 25, 50])
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.8, 0.9, 1.0, 1.1, 1.2])
    parser.add_argument("--every", type=int, default=1, help="every Nth image only (before --limit)")
    parser.add_argument("--limit", type=int, help="first N images only")
    parser.add_argument("--decimals", type=int, default=2, help="decimals of the dB cells")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)

    from deepam_tf.data import data_dir, list_images
    from deepam_tf.evaluation import PROTOCOL, model_restore_fn, noisy_version, read_gray
    from deepam_tf.metrics import psnr
    from deepam_tf.models import load_preset
    from deepam_tf.restore import estimate_sigma

    model = load_preset(args.model)
    if not getattr(model, "noise_level_input", False):
        raise SystemExit(f"{args.model} takes no noise level; nothing to mismatch")
    restore = model_restore_fn(model)
    folder = os.path.join(data_dir(args.data_dir), "denoise", args.set)
    paths = list_images(folder)[:: args.every][: args.limit]
    print(f"{args.model} on {args.set} ({len(paths)} images); protocol: {PROTOCOL}")
    header = ["true σ"] + [f"told {r:g}×σ" for r in args.ratios] + ["told the estimate", "mean estimate"]
    rows = []
    for sigma in args.sigmas:
        told = {r: [] for r in args.ratios}
        estimated, estimates = [], []
        for index, path in enumerate(paths):
            clean = read_gray(path)
            noisy = noisy_version(clean, sigma, 0, index)
            for r in args.ratios:
                told[r].append(psnr(clean, np.clip(restore(noisy, r * sigma), 0, 1)))
            guess = estimate_sigma(noisy)
            estimates.append(guess)
            estimated.append(psnr(clean, np.clip(restore(noisy, guess), 0, 1)))
        exact = np.mean(told[1.0]) if 1.0 in told else None

        def cell(values):
            mean = np.mean(values)
            d = args.decimals
            return f"{mean:.{d}f}" + (f" ({mean - exact:+.{d}f})" if exact is not None else "")

        rows.append([f"{sigma:g}"] + [cell(told[r]) for r in args.ratios]
                    + [cell(estimated), f"{np.mean(estimates):.2f}"])
        print(markdown_table(header, rows[-1:]), flush=True)
    print()
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
