"""The ``deepam`` command."""

import argparse
import os
import sys

import numpy as np


def _write_png(path, image, overwrite):
    """Writes an image in [0, 1] as 8-bit PNG via a temporary file and an atomic rename."""
    import imageio.v3 as iio

    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"output folder {directory} does not exist")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.partial")
    data = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    try:
        iio.imwrite(tmp, data, extension=".png")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _demo(args):
    """σ-noisy camera image, restored, written as noisy | restored | clean."""
    import skimage.data

    from deepam_tf import metrics
    from deepam_tf.classic_am import classic_am

    clean = skimage.data.camera().astype(np.float32) / 255.0
    rng = np.random.default_rng(0)
    noisy = clean + rng.normal(0.0, args.sigma / 255.0, clean.shape).astype(np.float32)
    restored = np.clip(classic_am(noisy).numpy(), 0.0, 1.0)
    method = "classic AM (TV)"
    panel = np.concatenate([np.clip(noisy, 0, 1), restored, clean], axis=1)
    _write_png(args.output, panel, args.overwrite)
    print(f"camera, sigma={args.sigma:g}, {method}")
    print(f"  noisy    PSNR {metrics.psnr(clean, np.clip(noisy, 0, 1)):.2f} dB")
    print(f"  restored PSNR {metrics.psnr(clean, restored):.2f} dB")
    print(f"wrote {args.output} (noisy | restored | clean)")


def _parser():
    parser = argparse.ArgumentParser(prog="deepam", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    denoise = commands.add_parser("denoise", help="denoise images (no input: a demo)")
    denoise.add_argument("inputs", nargs="*", help="image files or folders")
    denoise.add_argument("--sigma", type=float, default=25.0, help="noise level, 0-255 scale")
    denoise.add_argument("-o", "--output", default="deepam_camera.png", help="output path")
    denoise.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    train = commands.add_parser("train", help="train (or resume) a model from a config")
    train.add_argument("config", help="training config (JSON), e.g. configs/fast_cpu.json")
    train.add_argument("-o", "--output", required=True, help="run folder (resumes if present)")
    train.add_argument("--data-dir", help="benchmark data folder (default: $DEEPAM_DATA)")
    train.add_argument("--epochs", type=int, help="stop after this many epochs")
    train.add_argument("--verbose", type=int, default=1, help="Keras verbosity (0, 1, 2)")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        if args.command == "denoise":
            if args.inputs:
                raise SystemExit("deepam denoise on files needs the trained presets (issue 3)")
            _demo(args)
        elif args.command == "train":
            from deepam_tf import train

            train.train(
                train.load_config(args.config),
                args.output,
                data_root=args.data_dir,
                verbose=args.verbose,
                epochs=args.epochs,
            )
    except (ValueError, FileExistsError, FileNotFoundError, OSError) as error:
        print(f"deepam: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
