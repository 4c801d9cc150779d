"""Colour denoising benchmark: the grayscale DeepAM on R, G, B one by one against the
same model on the opponent channels (the default of ``deepam_tf.denoise``), and colour
BM3D, on the same noisy images in the same run.

    python benchmarks/colour.py [--sigmas 15 25 50] [--crop 256] [--model denoise_blind]
        [--data-dir DIR] [--no-bm3d]
    python benchmarks/colour.py --jpeg 90 [--sigmas 15 25]     # noisy 8-bit files

With ``--jpeg Q`` it measures the case of noisy files instead: the noisy images rounded to
8 bits and saved as PNG (lossless) and as JPEG of quality Q, plus a centre crop of
skimage's astronaut; each is denoised with σ estimated (``sigma=None``) through R, G, B,
the opponent channels, and ``colour_space="auto"``, which should pick the better of the two
for each format.

Images: the 10 Middlebury scenes' colour views (``depth_sr/middlebury10/rgb``) and the
clean RGB images of the RGB/NIR pairs (``rgb_nir/pairs/rgb``, without the low-light
pairs, which have no clean reference), centre crops of ``--crop`` pixels (0: whole).
Protocol: ``deepam_tf.evaluation``'s in colour (clean 8-bit RGB in [0, 1], N(0, (σ/255)²)
noise not clipped, drawn with seed (0, image index); results clipped to [0, 1]; PSNR with
data range 1 over all three channels), on crops. For whole files of a colour set, use
``deepam evaluate --colour`` (no BM3D column).
"""

import argparse
import glob
import io
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import import_bm3d, markdown_table  # noqa: E402

from deepam_tf import data, denoise, metrics  # noqa: E402
from deepam_tf.evaluation import noisy_version  # noqa: E402
from deepam_tf.image_io import read_image_file  # noqa: E402
from deepam_tf.restore import load_for_task  # noqa: E402


def colour_images(root, crop):
    """``{name: uint8 RGB}`` of the benchmark's clean colour images."""
    paths = sorted(glob.glob(os.path.join(root, "depth_sr", "middlebury10", "rgb", "*.png")))
    paths += sorted(p for p in glob.glob(os.path.join(root, "rgb_nir", "pairs", "rgb", "*.png"))
                    if "lowlight" not in p)
    if not paths:
        raise SystemExit(f"no colour images under {root} (depth_sr/middlebury10/rgb, rgb_nir/pairs/rgb)")
    images = {}
    for path in paths:
        images[os.path.basename(path)[:-4]] = centre_crop(read_image_file(path)[..., :3], crop)
    return images


def centre_crop(image, crop):
    """The centre ``crop`` x ``crop`` pixels of ``image`` (all of it for 0)."""
    if not crop:
        return image
    top, left = (max(0, (n - crop) // 2) for n in image.shape[:2])
    return image[top: top + crop, left: left + crop]


def file_case(images, sigmas, quality, model):
    """Mean PSNR of R, G, B / opponent / auto on noisy 8-bit PNG and JPEG files, σ estimated."""
    import imageio.v3 as iio

    spaces = ("rgb", "opponent", "auto")
    rows = []
    for sigma in sigmas:
        for saved_as in ("PNG", f"JPEG q{quality}"):
            psnr = {space: [] for space in spaces}
            for index, image in enumerate(images.values()):
                clean = image.astype(np.float32) / 255.0
                noisy = np.round(np.clip(noisy_version(clean, sigma, 0, index), 0, 1) * 255).astype(np.uint8)
                if saved_as != "PNG":
                    buffer = io.BytesIO()
                    iio.imwrite(buffer, noisy, extension=".jpg", quality=quality)
                    noisy = iio.imread(buffer.getvalue())
                for space in spaces:
                    restored = denoise(noisy, None, model=model, colour_space=space).astype(np.float32) / 255.0
                    psnr[space].append(metrics.psnr(clean, restored))
            rows.append([f"{sigma:g}", saved_as] + [f"{np.mean(psnr[s]):.2f}" for s in spaces])
            print(" ".join(rows[-1]), flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigmas", type=float, nargs="+", default=[15, 25, 50])
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--model", default="denoise_blind")
    parser.add_argument("--data-dir")
    parser.add_argument("--no-bm3d", action="store_true")
    parser.add_argument("--jpeg", type=int, metavar="Q",
                        help="measure noisy 8-bit PNG and JPEG (quality Q) files instead")
    args = parser.parse_args()
    bm3d = None if args.no_bm3d else import_bm3d(parser)

    images = colour_images(data.data_dir(args.data_dir), args.crop)
    model = load_for_task(args.model, "denoising")
    if args.jpeg:
        import skimage.data

        images["astronaut"] = centre_crop(skimage.data.astronaut(), args.crop)
        rows = file_case(images, args.sigmas, args.jpeg, model)
        print(f"\nModel: {args.model}; {len(images)} images; noisy files in 8 bits, σ estimated; "
              "mean PSNR dB.\n")
        print(markdown_table(["σ", "saved as", "R, G, B", "opponent", "auto"], rows))
        return
    methods = {
        "DeepAM, R G B": lambda noisy, sigma: denoise(noisy, sigma, model=model, colour_space="rgb"),
        "DeepAM, opponent": lambda noisy, sigma: denoise(noisy, sigma, model=model, colour_space="opponent"),
    }
    if bm3d is not None:
        methods["colour BM3D"] = lambda noisy, sigma: bm3d.bm3d_rgb(noisy, sigma / 255.0)
    rows, per_image = [], []
    for sigma in args.sigmas:
        psnr = {name: [] for name in methods}
        seconds = {name: [] for name in methods}
        noisy_psnr = []
        for index, (name, image) in enumerate(images.items()):
            clean = image.astype(np.float32) / 255.0
            noisy = noisy_version(clean, sigma, 0, index)
            noisy_psnr.append(metrics.psnr(clean, np.clip(noisy, 0, 1)))
            line = [f"{sigma:g}", name]
            for method, run in methods.items():
                start = time.perf_counter()
                restored = np.clip(np.asarray(run(noisy, sigma), np.float32), 0.0, 1.0)
                seconds[method].append(time.perf_counter() - start)
                psnr[method].append(metrics.psnr(clean, restored))
                line.append(f"{psnr[method][-1]:.2f}")
            per_image.append(line)
            print(" ".join(line), flush=True)
        gain = np.mean(psnr["DeepAM, opponent"]) - np.mean(psnr["DeepAM, R G B"])
        rows.append([f"{sigma:g}", len(images), f"{np.mean(noisy_psnr):.2f}"]
                    + [f"{np.mean(psnr[m]):.2f} ({np.mean(seconds[m]):.2f} s)" for m in methods]
                    + [f"{gain:+.2f}"])
    crop = f"{args.crop}x{args.crop} centre crops" if args.crop else "whole images"
    print(f"\nModel: {args.model}; {len(images)} images, {crop}; mean PSNR dB (mean time per image).\n")
    print(markdown_table(["σ", "images", "noisy"] + list(methods) + ["opponent − RGB"], rows))
    print()
    print(markdown_table(["σ", "image"] + list(methods), per_image))


if __name__ == "__main__":
    main()
