"""RGB-guided depth super-resolution benchmark: DeepAM against bilinear, bicubic and a
guided filter, measured in the same run, beside the paper.

    python benchmarks/depth_sr.py [--scales 4 8 16] [--model-pattern depth_x{scale}]
        [--data-dir DIR] [--no-deepam] [--bfloat16]

Protocol: HR depth in [0, 255] (the Middlebury 8-bit disparity), LR = ``d[::s, ::s]``
(top-left of each block), every method upsamples on that sample grid (LR pixel i on HR
pixel s i). BMP = % of pixels with |error| > 3; RMSE on [0, 255]; mean over the 10
``depth_sr/middlebury10`` scenes. NYU v2 (the 3 samples with metric depth in
``depth_sr/nyu_v2_samples``): each depth map is min-max scaled to [0, 255], every method
runs on that, and the RMSE is reported back in centimetres (the full 449-image NYU test
set is not available here). Guided filter: gray guide, r = 2s, eps = 100 (on
[0, 255]²) applied to the bilinear upsampling, as in the shared baselines.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import markdown_table  # noqa: E402

from deepam_tf import baselines, data, metrics  # noqa: E402
from deepam_tf.data import splits  # noqa: E402
from deepam_tf.image_io import read_image_file, rgb_to_gray  # noqa: E402

PAPER_BMP = {4: 3.14, 8: 5.78, 16: 10.45}  # DeepAM(2), Middlebury; its 10 scenes are unknown


def methods(scale, model, bfloat16=False):
    def bilinear(lr, rgb):
        return baselines.bilinear_upsample(lr, scale)

    def bicubic(lr, rgb):
        return baselines.bicubic_upsample(lr, scale)

    def guided(lr, rgb):
        gray = rgb_to_gray(rgb.astype(np.float32))
        return baselines.guided_filter(gray, baselines.bilinear_upsample(lr, scale), 2 * scale, 100.0)

    table = {"bilinear": bilinear, "bicubic": bicubic, "guided filter": guided}
    if model is not None:
        from deepam_tf import upsample_depth

        def deepam(precision):
            def run(lr, rgb):
                # uint8 depth (Middlebury) on its own scale; float depth (NYU) min-max
                # scaled by the API.
                lr = lr if lr.dtype == np.uint8 else lr.astype(np.float32)
                return upsample_depth(lr, rgb, scale, model=model, precision=precision).astype(np.float32)
            return run

        table["DeepAM(2)"] = deepam(None)
        if bfloat16:
            table["DeepAM(2) bfloat16"] = deepam("bfloat16")
    return table


def nyu_scenes(root):
    """``[(name, depth in metres, rgb)]`` of the NYU v2 samples with metric depth."""
    folder = os.path.join(root, "depth_sr", "nyu_v2_samples")
    names = sorted(f[:-4] for f in os.listdir(os.path.join(folder, "depth_m")) if f.endswith(".npy"))
    return [(n, np.load(os.path.join(folder, "depth_m", n + ".npy")).astype(np.float64),
             read_image_file(os.path.join(folder, "rgb", n + ".jpg"))) for n in names]


def crop(depth, scale):
    h, w = depth.shape[0] // scale * scale, depth.shape[1] // scale * scale
    return (slice(0, h), slice(0, w))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", nargs="+", type=int, default=[4, 8, 16])
    parser.add_argument("--model-pattern", default="depth_x{scale}")
    parser.add_argument("--data-dir")
    parser.add_argument("--no-deepam", action="store_true", help="baselines only")
    parser.add_argument("--bfloat16", action="store_true",
                        help="also DeepAM in mixed bfloat16 (deepam_tf's precision='bfloat16')")
    parser.add_argument("--sets", nargs="+", default=["middlebury10", "nyu"],
                        choices=["middlebury10", "nyu"])
    args = parser.parse_args()
    from deepam_tf.models import list_presets, load_preset

    root = data.data_dir(args.data_dir)
    scenes = [(data.pair_key(d), read_image_file(d), read_image_file(r))
              for d, r in splits.depth_test_pairs(root)] if "middlebury10" in args.sets else []
    nyu = nyu_scenes(root) if "nyu" in args.sets else []
    summary, nyu_summary = [], []
    for scale in args.scales:
        name = args.model_pattern.format(scale=scale)
        model = None
        if not args.no_deepam and (name in list_presets() or os.path.isfile(name)):
            model = load_preset(name)
        elif not args.no_deepam:
            print(f"(no preset {name}: DeepAM row skipped)")
        if scenes:
            per_method = {}
            for method, fn in methods(scale, model, args.bfloat16).items():
                bmp, rmse, seconds = [], [], 0.0
                for scene, depth, rgb in scenes:
                    region = crop(depth, scale)
                    truth = depth[region].astype(np.float32)
                    lr = depth[region][::scale, ::scale]  # uint8, as the protocol's input
                    start = time.perf_counter()
                    estimate = fn(lr, rgb[region])
                    seconds += time.perf_counter() - start
                    bmp.append(metrics.bad_matching_percentage(truth, estimate, 3.0))
                    rmse.append(metrics.rmse(truth, estimate))
                per_method[method] = (np.mean(bmp), np.mean(rmse), seconds / len(scenes), bmp)
                print(f"x{scale} {method}: BMP {np.mean(bmp):.2f} RMSE {np.mean(rmse):.2f} "
                      f"({seconds / len(scenes):.2f} s/scene)", flush=True)
            names = [s[0] for s in scenes]
            print(f"\n### x{scale}: BMP (%) per scene\n")
            print(markdown_table(["method"] + names,
                                 [[m] + [f"{b:.2f}" for b in v[3]] for m, v in per_method.items()]))
            for method, (bmp, rmse, seconds, _) in per_method.items():
                summary.append([f"x{scale}", method, f"{bmp:.2f}", f"{rmse:.2f}", f"{seconds:.2f}",
                                PAPER_BMP[scale] if method.startswith("DeepAM") else "-"])
        if nyu:
            nyu_rows = []
            for method, fn in methods(scale, model, args.bfloat16).items():
                errors = []
                for name, depth, rgb in nyu:
                    low, high = float(depth.min()), float(depth.max())
                    truth = (depth - low) / (high - low) * 255.0
                    estimate = fn(truth[::scale, ::scale], rgb)
                    errors.append(metrics.rmse(truth, estimate) * (high - low) / 255.0 * 100.0)
                nyu_rows.append([f"x{scale}", method] + [f"{e:.2f}" for e in errors] + [f"{np.mean(errors):.2f}"])
                print(f"x{scale} {method} NYU RMSE (cm): {np.mean(errors):.2f}", flush=True)
            nyu_summary.extend(nyu_rows)
    if nyu:
        print("\n### NYU v2 samples: RMSE (cm)\n")
        print(markdown_table(["scale", "method"] + [n for n, _, _ in nyu] + ["mean"], nyu_summary))
    if scenes:
        print("\n### Mean over the middlebury10 scenes\n")
        print(markdown_table(["scale", "method", "BMP %", "RMSE", "s / scene", "paper BMP"], summary))


if __name__ == "__main__":
    main()
