"""How much overlap a static-size TFLite model needs on images larger than its input: the
model run window by window (``deepam_tf.export.windows.run_in_windows``) against the same
preset on the whole image (``deepam_tf.denoise``), under the evaluation protocol
(``deepam_tf.evaluation.PROTOCOL``).

    python benchmarks/tflite_windows.py [--model exported/tflite/denoise_blind_256x256.tflite]
        [--preset denoise_blind] [--sets set12 bsd68] [--limit 10] [--sigma 25]
        [--overlaps 0 16 32 64 128]

Per overlap: windows per image, mean PSNR, its change against the whole image, and the
largest pixel difference from the whole image's result (/255; the TFLite model's 8 unrolled
PCG iterations alone differ from the converged solve by up to about 0.5/255). Needs the
benchmark data (``--data-dir`` or ``DEEPAM_DATA``, default ``../shared/data``).
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import markdown_table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "exported", "tflite", "denoise_blind_256x256.tflite"))
    parser.add_argument("--preset", default="denoise_blind", help="the preset the TFLite model holds")
    parser.add_argument("--sets", nargs="+", default=["set12", "bsd68"])
    parser.add_argument("--limit", type=int, default=10, help="first N images of each set")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--overlaps", nargs="+", type=int, default=[0, 16, 32, 64, 128])
    parser.add_argument("--data-dir", help="benchmark data (default: DEEPAM_DATA or ../shared/data)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (the protocol's: 0)")
    args = parser.parse_args()

    from deepam_tf import data, denoise, evaluation, metrics
    from deepam_tf.export.windows import litert_runner, run_in_windows, window_spans

    run = litert_runner(args.model, sigma=args.sigma, num_threads=2)
    root = data.data_dir(args.data_dir)
    rows = []
    for name in args.sets:
        paths = data.list_images(os.path.join(root, "denoise", name))[:args.limit]
        results = {overlap: [] for overlap in args.overlaps}
        whole_psnr, whole_seconds, sizes = [], [], set()
        for index, path in enumerate(paths):
            clean = evaluation.read_gray(path)
            sizes.add("x".join(map(str, clean.shape)))
            noisy = evaluation.noisy_version(clean, args.sigma, args.seed, index)
            start = time.perf_counter()
            whole = denoise(noisy, args.sigma, model=args.preset)
            whole_seconds.append(time.perf_counter() - start)
            whole_psnr.append(metrics.psnr(clean, whole))
            for overlap in args.overlaps:
                start = time.perf_counter()
                out = np.clip(run_in_windows(run, noisy, run.size, overlap), 0, 1)
                seconds = time.perf_counter() - start
                count = len(window_spans(clean.shape[0], run.size[0], overlap)) * len(
                    window_spans(clean.shape[1], run.size[1], overlap))
                results[overlap].append((metrics.psnr(clean, out), np.abs(out - whole).max() * 255,
                                         count, seconds))
        label = f"{name} ({len(paths)}: {', '.join(sorted(sizes))})"
        rows.append([label, "whole image (Keras)", "1", f"{np.mean(whole_psnr):.3f}", "–", "–",
                     f"{np.mean(whole_seconds):.2f}"])
        for overlap in args.overlaps:
            psnr, gap, count, seconds = (np.array(column) for column in zip(*results[overlap]))
            rows.append([label, f"TFLite windows, overlap {overlap}", f"{count.mean():.1f}",
                         f"{psnr.mean():.3f}", f"{psnr.mean() - np.mean(whole_psnr):+.3f}",
                         f"{gap.max():.2f}", f"{seconds.mean():.2f}"])
        for row in rows[-len(args.overlaps) - 1:]:
            print(" | ".join(row), flush=True)
    print()
    print(f"σ = {args.sigma:g}, {os.path.basename(args.model)} against {args.preset} on the whole image")
    print(markdown_table(["set", "run", "windows per image", "mean PSNR", "Δ PSNR",
                          "max |Δ| vs whole, /255", "s per image"], rows))


if __name__ == "__main__":
    main()
