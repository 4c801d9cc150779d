"""RGB/NIR restoration benchmark: DeepAM against colour BM3D and a NIR-guided filter on
the test pairs, measured in the same run.

    python benchmarks/rgb_nir.py [--sigmas 25 50] [--model rgbnir_blind] [--data-dir DIR]
        [--gray-model denoise_blind] [--no-bm3d] [--no-deepam] [--bfloat16] [--demo OUT.png]

Protocol: clean 8-bit RGB in [0, 1], N(0, (σ/255)²) noise not clipped, noise drawn with
seed (0, pair index); results clipped to [0, 1]; PSNR (data range 1) against the clean
RGB. Test pairs: ``deepam_tf.data.splits.RGB_NIR_TEST``. NIR-guided filter: each colour
channel filtered with the NIR image as guide, r = 4, eps = 1e-2 (the shared baselines).
``--demo`` also restores the real low-light pair and writes noisy | restored | NIR.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import import_bm3d, markdown_table  # noqa: E402

from deepam_tf import baselines, data, metrics  # noqa: E402
from deepam_tf.data import splits  # noqa: E402
from deepam_tf.image_io import read_image_file  # noqa: E402


def methods(model, with_bm3d, gray_model=None, bfloat16=False):
    def guided(noisy, nir, sigma):
        return np.stack([baselines.guided_filter(nir, noisy[..., c], 4, 1e-2) for c in range(3)], -1)

    table = {"NIR-guided filter": guided}
    if with_bm3d:
        import bm3d

        table["colour BM3D"] = lambda noisy, nir, sigma: bm3d.bm3d_rgb(noisy, sigma / 255.0)
    if gray_model is not None:
        from deepam_tf import denoise

        # No NIR: the grayscale denoiser on the opponent channels (deepam_tf.denoise).
        table["gray DeepAM(3), no NIR"] = lambda noisy, nir, sigma: denoise(
            noisy, sigma, model=gray_model, colour_space="opponent")
    if model is not None:
        from deepam_tf import restore_with_nir

        table["DeepAM(2)"] = lambda noisy, nir, sigma: restore_with_nir(noisy, nir, sigma, model=model)
        if bfloat16:
            table["DeepAM(2) bfloat16"] = lambda noisy, nir, sigma: restore_with_nir(
                noisy, nir, sigma, model=model, precision="bfloat16")
    return table


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sigmas", nargs="+", type=float, default=[25, 50])
    parser.add_argument("--model", default="rgbnir_blind")
    parser.add_argument("--gray-model", default="denoise_blind",
                        help="grayscale denoiser run without the NIR image ('none': skip)")
    parser.add_argument("--data-dir")
    parser.add_argument("--no-bm3d", action="store_true")
    parser.add_argument("--no-deepam", action="store_true")
    parser.add_argument("--bfloat16", action="store_true",
                        help="also DeepAM(2) in mixed bfloat16 (precision='bfloat16')")
    parser.add_argument("--demo", help="write the low-light demo picture here")
    args = parser.parse_args()
    if not args.no_bm3d:
        import_bm3d(parser)
    from deepam_tf.models import list_presets, load_preset

    root = data.data_dir(args.data_dir)
    model = None
    if not args.no_deepam and (args.model in list_presets() or os.path.isfile(args.model)):
        model = load_preset(args.model)
    elif not args.no_deepam:
        print(f"(no preset {args.model}: DeepAM row skipped)")
    gray_model = None if args.gray_model == "none" or args.no_deepam else load_preset(args.gray_model)
    table = methods(model, not args.no_bm3d, gray_model, args.bfloat16)
    pairs = [(data.pair_key(rgb), read_image_file(rgb).astype(np.float32) / 255.0,
              read_image_file(nir).astype(np.float32) / 255.0)
             for rgb, nir in splits.rgb_nir_pairs(root, "test")]
    rows = []
    for sigma in args.sigmas:
        for index, (name, clean, nir) in enumerate(pairs):
            rng = np.random.default_rng([0, index])
            noisy = (clean + rng.normal(0, sigma / 255.0, clean.shape)).astype(np.float32)
            row = [f"{sigma:g}", name, f"{metrics.psnr(clean, np.clip(noisy, 0, 1)):.2f}"]
            for method, fn in table.items():
                start = time.perf_counter()
                restored = np.clip(fn(noisy, nir, sigma), 0, 1)
                seconds = time.perf_counter() - start
                row.append(f"{metrics.psnr(clean, restored):.2f} ({seconds:.1f} s)")
                print(f"sigma {sigma:g} {name} {method}: {row[-1]}", flush=True)
            rows.append(row)
    header = ["σ", "pair", "noisy"] + list(table)
    print("\n### PSNR (dB) and time per image\n")
    print(markdown_table(header, rows))
    if args.demo and model is not None:
        from deepam_tf import restore_with_nir
        from deepam_tf.image_io import write_image_file

        rgb_path, nir_path = splits.rgb_nir_pairs(root, "demo")[0]
        rgb, nir = read_image_file(rgb_path), read_image_file(nir_path)
        restored = restore_with_nir(rgb, nir, None, model=model)
        panel = np.concatenate([rgb, restored, np.repeat(nir[..., None], 3, -1)], axis=1)
        write_image_file(args.demo, panel)
        print(f"wrote {args.demo} (noisy low-light RGB | DeepAM | NIR)")


if __name__ == "__main__":
    main()
