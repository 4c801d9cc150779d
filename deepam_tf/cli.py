"""The ``deepam`` command: denoise, upsample-depth, restore-nir, evaluate, export, train, refit-head."""

import argparse
import os
import sys

import numpy as np

from deepam_tf.export.tflite import DEFAULT_ITERATIONS, DEFAULT_SIZE
from deepam_tf.image_io import (IMAGE_EXTENSIONS, check_writable, read_icc_profile,
                                read_image_file, split_alpha, write_image_file)
from deepam_tf.restore import (AUTO_MODEL, BLIND_PRESETS, COLOUR_SPACES, DEFAULT_DENOISER,
                               PRECISIONS, blind_preset_for, blind_routes, check_sigma, estimate_sigma,
                               given_sigma, resolve_denoiser, specialist_presets)

DEMO_SIGMA = 25.0
DEMO_OUTPUT = "deepam_camera.png"


def _demo(args):
    """σ-noisy camera image, restored, written as noisy | restored | clean."""
    import skimage.data

    from deepam_tf import metrics
    from deepam_tf.models import list_presets
    from deepam_tf.restore import denoise

    check_writable(args.output, args.overwrite)
    sigma = args.sigma or DEMO_SIGMA
    clean = skimage.data.camera().astype(np.float32) / 255.0
    rng = np.random.default_rng(0)
    noisy = clean + rng.normal(0.0, sigma / 255.0, clean.shape).astype(np.float32)
    name = resolve_denoiser(args.model, sigma)
    restored = denoise(noisy, sigma, model=name, tile_size=args.tile_size,
                       self_ensemble=args.self_ensemble, precision=args.precision)
    method = f"DeepAM {'preset ' if name in list_presets() else ''}{name}"
    panel = np.concatenate([np.clip(noisy, 0, 1), restored, clean], axis=1)
    write_image_file(args.output, panel, args.overwrite)
    print(f"camera, sigma={sigma:g}, {method}")
    print(f"  noisy    PSNR {metrics.psnr(clean, np.clip(noisy, 0, 1)):.2f} dB")
    print(f"  restored PSNR {metrics.psnr(clean, restored):.2f} dB")
    print(f"wrote {args.output} (noisy | restored | clean)")


def _sources_and_targets(inputs, output):
    """``(source, target)`` per input image. Without ``output``: a folder's images go to
    the sibling folder ``FOLDER_denoised/`` and a file's to ``NAME_denoised.EXT`` beside
    it; with ``output``: that file (one input file; into it if it is a folder) or folder.
    A file in a format read but not written (``.gif``) goes to PNG (:func:`_written_as`)."""
    from deepam_tf.data import list_images

    pairs = []
    for item in inputs:
        if os.path.isdir(item):
            entries = list(os.scandir(item))
            subfolders = sorted(e.name for e in entries if e.is_dir())
            if subfolders:
                print(f"deepam: note: {item}: subfolders are not searched ({', '.join(subfolders)})",
                      file=sys.stderr)
            hidden = sorted(e.name for e in entries if e.name.startswith(".") and not e.is_dir()
                            and e.name.lower().endswith(IMAGE_EXTENSIONS))
            other = sorted(e.name for e in entries if not e.is_dir() and not e.name.startswith(".")
                           and not e.name.lower().endswith(IMAGE_EXTENSIONS))
            for names, what in ((hidden, "hidden file(s)"),
                                (other, f"file(s) not named {'/'.join(IMAGE_EXTENSIONS)}")):
                if names:
                    print(f"deepam: note: {item}: {len(names)} {what} left out "
                          f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})",
                          file=sys.stderr)
            folder = os.path.normpath(item) + "_denoised" if output is None else output
            pairs += [(f, os.path.join(folder, os.path.basename(f))) for f in list_images(item)]
        elif output is None:
            stem, extension = os.path.splitext(_written_as(item))
            pairs.append((item, f"{stem}_denoised{extension}"))
        elif len(inputs) == 1 and not os.path.isdir(output):
            pairs.append((item, output))
        else:
            # Like cp: a folder as the output receives the file under its own name.
            pairs.append((item, os.path.join(output, os.path.basename(_written_as(item)))))
    seen = {}
    for source, target in pairs:
        check_writable(target)
        key = os.path.abspath(target)
        if key in seen:
            raise ValueError(f"{seen[key]} and {source} would both be written to {target}")
        seen[key] = source
    return pairs


def _written_as(path):
    """``path``, or with ``.png`` for an extension this package reads but does not write
    (an input read through imageio, e.g. ``.gif``)."""
    stem, extension = os.path.splitext(path)
    return path if extension.lower() in IMAGE_EXTENSIONS else stem + ".png"


def _destination(pairs):
    """Where the outputs went, in words: the file, the folder(s), or beside the inputs."""
    if len(pairs) == 1:
        return pairs[0][1]
    folders = sorted({os.path.dirname(target) or "." for _, target in pairs})
    if len(folders) > 3:
        return f"{len(folders)} folders ({folders[0]}/, ...)"
    return ", ".join(folder + "/" for folder in folders)


def _denoise_files(args):
    import keras

    from deepam_tf.restore import denoise, load_for_task

    pairs = _sources_and_targets(args.inputs, args.output)
    if not pairs:
        raise ValueError("no input images found")
    # Output folders this command names are made; a missing parent of an output file is
    # an error (write_image_file says which).
    for folder in {os.path.dirname(t) for _, t in pairs} - {""}:
        if args.output is None or os.path.normpath(folder) == os.path.normpath(args.output):
            os.makedirs(folder, exist_ok=True)
    # A fixed-σ preset (denoise_sigma25) brings its σ; otherwise σ is estimated per file.
    fixed_sigma = given_sigma(args.sigma, args.model)
    model = args.model
    if model != AUTO_MODEL:  # "auto" picks per file, and per σ estimated
        model = load_for_task(model, "denoising", args.precision)
    failures, estimates = [], []
    # Keras draws its bar with terminal escapes even into a log file: there, one line.
    progress = (keras.utils.Progbar(len(pairs), verbose=_default_verbosity())
                if len(pairs) > 1 else None)
    for source, target in pairs:
        try:
            if os.path.abspath(source) == os.path.abspath(target):
                raise ValueError(f"{target}: output would overwrite its input")
            check_writable(target, args.overwrite)  # before the work, not after it
            image = read_image_file(source, keep_alpha=True)  # denoise keeps alpha as is
            if fixed_sigma is None:  # denoise estimates it again, and picks the model by it
                estimates.append(f"{source}: estimated sigma {estimate_sigma(image):.2f}")
            restored = denoise(image, fixed_sigma, model=model, tile_size=args.tile_size,
                               self_ensemble=args.self_ensemble, colour_space=args.colour_space,
                               precision=args.precision)
            write_image_file(target, restored, args.overwrite, icc_profile=read_icc_profile(source))
        except (ValueError, OSError) as error:
            message = str(error)
            failures.append(message if source in message else f"{source}: {message}")
        if progress:
            progress.add(1)
    for estimate in estimates:
        print(estimate)
    for failure in failures:
        print(f"deepam: failed: {failure}", file=sys.stderr)
    print(f"denoised {len(pairs) - len(failures)} of {len(pairs)} images into {_destination(pairs)}")
    return 1 if failures else 0


def _one_channel(image, path, what):
    """The array of a single-channel image file; a gray image stored as RGB (all channels
    equal, as depth and NIR files often are) is taken as gray."""
    if image.ndim == 3:
        if not np.array_equal(image, np.broadcast_to(image[..., :1], image.shape)):
            raise ValueError(f"{path}: the {what} image must be single-channel, got "
                             f"{image.shape[-1]} channels that differ")
        image = image[..., 0]
    return image


def _upsample_depth(args):
    from deepam_tf.restore import upsample_depth

    check_writable(args.output, args.overwrite)
    depth = _one_channel(read_image_file(args.depth), args.depth, "depth")
    rgb = read_image_file(args.rgb)
    if rgb.ndim != 3:
        raise ValueError(f"{args.rgb}: the guidance must be a colour (RGB) image, got a single-channel one")
    expected = (depth.shape[0] * args.scale, depth.shape[1] * args.scale)
    if rgb.shape[:2] != expected:
        raise ValueError(f"{args.rgb} is {rgb.shape[0]}x{rgb.shape[1]} but {args.depth} "
                         f"({depth.shape[0]}x{depth.shape[1]}) times {args.scale} is "
                         f"{expected[0]}x{expected[1]}")
    high = upsample_depth(depth, rgb, args.scale, model=args.model, tile_size=args.tile_size,
                          self_ensemble=args.self_ensemble, precision=args.precision)
    write_image_file(args.output, high, args.overwrite)
    print(f"wrote {args.output} ({high.shape[1]}x{high.shape[0]}, x{args.scale})")
    return 0


def _restore_nir(args):
    from deepam_tf.restore import restore_with_nir

    check_writable(args.output, args.overwrite)
    rgb = read_image_file(args.rgb, keep_alpha=True)  # restore_with_nir keeps alpha as is
    if split_alpha(rgb)[0].ndim != 3:
        raise ValueError(f"{args.rgb}: the image to restore must be a colour (RGB) image, got a "
                         f"single-channel one")
    nir = _one_channel(read_image_file(args.nir), args.nir, "NIR")
    if rgb.shape[:2] != nir.shape[:2]:
        raise ValueError(f"{args.rgb} is {rgb.shape[0]}x{rgb.shape[1]} but {args.nir} is "
                         f"{nir.shape[0]}x{nir.shape[1]}; the pair must be aligned, same size")
    sigma = given_sigma(args.sigma, args.model)
    if sigma is None:
        sigma = estimate_sigma(rgb)
        print(f"{args.rgb}: estimated sigma {sigma:.2f}")
    restored = restore_with_nir(rgb, nir, sigma, model=args.model, tile_size=args.tile_size,
                                self_ensemble=args.self_ensemble, precision=args.precision)
    write_image_file(args.output, restored, args.overwrite, icc_profile=read_icc_profile(args.rgb))
    print(f"wrote {args.output}")
    return 0


def _evaluate(args):
    from deepam_tf.evaluation import evaluate, evaluated_model

    images = os.path.abspath(args.folder) if args.folder else args.set
    model = evaluated_model(args.model, args.sigma, args.colour)
    rows = evaluate(model, images, args.sigma, seed=args.seed, output=args.output,
                    overwrite=args.overwrite, self_ensemble=args.self_ensemble, data_dir=args.data_dir,
                    progress=True, colour=args.colour, precision=args.precision)
    mean = rows[-1]
    ensemble = " (x8 self-ensemble)" if args.self_ensemble else ""
    ensemble += ", RGB" if args.colour else ""
    ensemble += ", bfloat16" if args.precision == "bfloat16" else ""
    print(f"{model}{ensemble} at sigma {args.sigma:g}: mean PSNR {mean['psnr']:.2f} dB, "
          f"SSIM {mean['ssim']:.4f} ({len(rows) - 1} images); wrote {args.output}.csv and .md")
    return 0


def _export(args):
    from deepam_tf.export import export_saved_model, export_tflite
    from deepam_tf.export.release import split_bands
    from deepam_tf.export.saved_model import check_model_name
    from deepam_tf.export.tflite import check_export_options
    from deepam_tf.models import load_preset

    if args.precision == "bfloat16" and args.format == "tflite":
        raise ValueError("TFLite has no bfloat16 models; use --float16 for half-size weights")
    routed = args.preset == AUTO_MODEL
    if routed and args.format != "saved_model":
        raise ValueError("'auto' (several presets routed by sigma) is a SavedModel; a TFLite "
                         "model holds one preset: export each of them")
    if args.specialists and not routed:
        raise ValueError("--specialists adds the fixed-sigma presets to 'deepam export auto'")
    name = args.name or ("denoise" if routed else os.path.splitext(os.path.basename(args.preset))[0])
    check_model_name(name, "--name")
    dtype = None if args.precision is None else PRECISIONS[args.precision]
    routes = blind_routes("denoise") if routed else [(None, args.preset)]
    model, above = split_bands([(top, load_preset(preset, dtype)) for top, preset in routes])
    specialists = specialist_presets("denoise") if args.specialists else []
    exact = [(sigma, load_preset(preset, dtype)) for sigma, preset in specialists]
    if args.format == "tflite":
        check_export_options(tuple(args.size), args.iterations, model, args.rgb)
        if os.path.exists(args.output) and not os.path.isdir(args.output):
            raise ValueError(f"{args.output} is a file; -o names the folder the .tflite goes into")
        os.makedirs(args.output, exist_ok=True)
        suffix = ("_rgb" if args.rgb else "") + ("_fp16" if args.float16 else "")
        path = os.path.join(args.output, f"{name}_{args.size[0]}x{args.size[1]}{suffix}.tflite")
        export_tflite(model, path, tuple(args.size), args.iterations, args.float16, args.overwrite, args.rgb)
        print(f"wrote {path}")
        return 0
    path = export_saved_model(model, args.output, name, args.version, above, exact)
    if routed:
        print("sigma bands: " + ", ".join(f"{preset} to {top:g}" for top, preset in routes)
              + "".join(f"; exactly {sigma:g}: {preset}" for sigma, preset in specialists))
    print(f"wrote {path} (serve with: docker run -p 8501:8501 -v {os.path.abspath(args.output)}:/models "
          f"-e MODEL_NAME={name} tensorflow/serving)")
    return 0


def _refit_head(args):
    from deepam_tf import refit
    from deepam_tf.data import data_dir, list_images, splits
    from deepam_tf.models import load_preset

    if not args.output.endswith(".keras"):
        raise ValueError(f"the output must be a .keras file, got {args.output}")
    sigma = args.sigma if args.sigma_range is None else tuple(args.sigma_range)
    if os.path.exists(args.output) and not args.overwrite:
        raise ValueError(f"{args.output} exists; pass --overwrite to replace it")
    paths = list_images(args.images) if args.images else splits.denoise_fit_paths(data_dir(args.data_dir))
    model = load_preset(args.model)
    refit.check_denoiser(model)
    clean = refit.read_images(paths, model.channels)
    print(f"refitting the last stage's head of {args.model} at sigma "
          f"{' to '.join(f'{value:g}' for value in np.atleast_1d(sigma))} on {len(paths)} images")
    refit.refit_head(model, clean, sigma, first_layer=args.first_layer, draws=args.draws,
                     loss=args.loss,
                     epochs=args.epochs, batch_size=args.batch_size,
                     learning_rate=args.learning_rate, seed=args.seed, verbose=args.verbose)
    partial = args.output + ".partial.keras"
    model.save(partial)
    os.replace(partial, args.output)
    print(f"wrote {args.output}")
    return 0


def _default_verbosity():
    """Keras' progress bar on a terminal; a line per epoch into a log file, where the bar's
    escape codes and carriage returns would pile up."""
    return 1 if sys.stdout.isatty() else 2


def _sigma(text):
    try:
        return check_sigma(float(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error))


def _tile_size(text):
    if text in ("auto", "none"):
        return None if text == "none" else text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a pixel count, 'auto' or 'none', got {text!r}")
    if value < 2:
        raise argparse.ArgumentTypeError(f"tile size must be >= 2 pixels, got {value}")
    return value


def _integer_at_least(minimum, what):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer, got {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what} must be >= {minimum}, got {value}")
        return value

    return parse


def _positive_number(what):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}")
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"{what} must be a positive number, got {text}")
        return value

    return parse


def _blind_presets_in_words(task="denoise"):
    """Which blind preset of ``task`` "auto" takes for which σ, from the shipped training
    ranges."""
    from deepam_tf.models import list_presets

    default = BLIND_PRESETS[task]
    top = list_presets()[default]["sigma_range"][1]
    return f"{default} to {top:g}, {blind_preset_for(top + 1, task)} above"


def _restoration_options(command, task, default_model, default_meaning=None):
    from deepam_tf.models import list_presets

    shipped = sorted(name for name, meta in list_presets().items() if meta.get("task") == task)
    command.add_argument("--model", default=None if "<" in default_model else default_model,
                         help=f"preset ({', '.join(shipped)}) or .keras file (default "
                              f"{default_meaning or default_model})")
    command.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    command.add_argument("--tile-size", type=_tile_size, default="auto",
                         help="CNN tile side in pixels, 'auto' (from free memory) or 'none'; "
                              "tiling is exact, it only bounds memory")
    _self_ensemble_option(command)


def _self_ensemble_option(command):
    command.add_argument("--self-ensemble", action="store_true",
                         help="average over the 8 rotations and flips of the input (8x the time)")
    command.add_argument("--precision", choices=list(PRECISIONS), default=None,
                         help="bfloat16: the networks in mixed bfloat16, about 1.5x faster on CPUs "
                              "with AVX512-BF16 or AMX and on recent GPUs, same mean PSNR; slower "
                              "elsewhere (default: float32, as the presets are stored)")


def _parser():
    parser = argparse.ArgumentParser(prog="deepam", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    denoise = commands.add_parser("denoise", help="denoise images (no input: a demo)")
    denoise.add_argument("inputs", nargs="*", help="image files or folders")
    denoise.add_argument("--sigma", type=_sigma,
                         help="noise level, 0-255 scale (default: estimated per image; the "
                              f"demo adds and removes {DEMO_SIGMA:g})")
    denoise.add_argument("-o", "--output",
                         help="output file, or folder (several inputs, or an existing folder); "
                              "default: FOLDER_denoised/ for a folder, NAME_denoised.EXT beside "
                              f"a file, {DEMO_OUTPUT} for the demo")
    _restoration_options(denoise, "denoise", AUTO_MODEL, f"{AUTO_MODEL}: the fixed-sigma preset of "
                         f"the --sigma given if one is shipped, else the blind preset for the "
                         f"sigma ({_blind_presets_in_words()})")
    denoise.add_argument("--colour-space", choices=COLOUR_SPACES, default="auto",
                         help="RGB images: the opponent channels (about 1.1 dB better when the "
                              "noise is independent across channels), R, G and B (better for "
                              "noisy JPEGs), or auto: chosen from the image (default)")

    depth = commands.add_parser("upsample-depth", help="RGB-guided depth super-resolution")
    depth.add_argument("--depth", required=True, help="low-resolution depth image (8/16-bit PNG)")
    depth.add_argument("--rgb", required=True, help="aligned high-resolution colour image")
    depth.add_argument("--scale", type=_integer_at_least(2, "scale"), required=True,
                       help="upsampling factor (shipped models: 4, 8, 16)")
    depth.add_argument("-o", "--output", required=True)
    _restoration_options(depth, "depth_sr", "depth_x<scale>")

    nir = commands.add_parser("restore-nir", help="denoise RGB guided by an aligned NIR image")
    nir.add_argument("--rgb", required=True, help="noisy colour image")
    nir.add_argument("--nir", required=True, help="aligned near-infrared image (gray)")
    nir.add_argument("--sigma", type=_sigma, help="noise level, 0-255 scale (default: estimated)")
    nir.add_argument("-o", "--output", required=True)
    _restoration_options(nir, "rgb_nir", AUTO_MODEL, f"{AUTO_MODEL}: the blind preset for the "
                         f"sigma ({_blind_presets_in_words('rgb_nir')})")

    evaluate = commands.add_parser("evaluate", help="PSNR/SSIM tables on a test set")
    evaluate.add_argument("--model", default=AUTO_MODEL,
                          help=f"preset name or .keras file; {AUTO_MODEL} (default): the "
                               f"fixed-sigma preset of --sigma if one is shipped, else the blind "
                               f"preset for the sigma ({_blind_presets_in_words()}; with --colour: "
                               f"for the noisiest opponent channel)")
    evaluate.add_argument("--set", default="bsd68", help="set under <data>/denoise/ (bsd68, set12)")
    evaluate.add_argument("--folder", help="evaluate this image folder instead")
    evaluate.add_argument("--data-dir", help="benchmark data folder (default: $DEEPAM_DATA)")
    evaluate.add_argument("--sigma", type=_sigma, default=25.0,
                          help="noise level added to each clean image, 0-255 scale (default: 25)")
    evaluate.add_argument("--seed", type=int, default=0,
                          help="noise seed: image i (sorted by name) gets noise from numpy default_rng([SEED, i]) (default: 0)")
    evaluate.add_argument("-o", "--output", default="evaluation",
                          help="writes OUTPUT.csv, .md (default: evaluation)")
    evaluate.add_argument("--overwrite", action="store_true", help="replace existing OUTPUT.csv, .md")
    evaluate.add_argument("--colour", action="store_true",
                          help="evaluate RGB files in colour (default: converted to gray)")
    _self_ensemble_option(evaluate)

    export = commands.add_parser("export", help="export a preset for serving")
    export.add_argument("preset", help="preset name or .keras file; auto (saved_model): "
                                       "denoise_blind and denoise_high_sigma in one model, each "
                                       "request served by the one deepam denoise's auto takes "
                                       "for its sigma (the fixed-sigma specialists with "
                                       "--specialists)")
    export.add_argument("--format", choices=["saved_model", "tflite"], default="saved_model",
                        help="saved_model (TF-Serving; the default) or tflite (phones)")
    export.add_argument("--size", type=_integer_at_least(2, "size"), nargs=2, default=list(DEFAULT_SIZE),
                        metavar=("H", "W"), help="static input size (tflite; default: %(default)s)")
    export.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                        help=f"unrolled DCT-PCG iterations (tflite; default: {DEFAULT_ITERATIONS}, "
                             f"chosen by benchmarks/unrolled_iterations.py)")
    export.add_argument("--float16", action="store_true", help="float16 weights (tflite)")
    export.add_argument("--precision", choices=list(PRECISIONS), default=None,
                        help="saved_model: bfloat16 runs the networks in mixed bfloat16 (for "
                             "servers whose GPU or CPU computes bfloat16; default float32)")
    export.add_argument("--rgb", action="store_true",
                        help="tflite: take an RGB image and denoise its opponent channels, as "
                             "deepam denoise does (noise-level-conditioned grayscale denoisers)")
    export.add_argument("--specialists", action="store_true",
                        help="auto: also the fixed-sigma presets (denoise_sigma15/25/50), each "
                             "serving exactly its sigma, as deepam denoise's auto does "
                             "(0.02-0.04 dB better there; about 10 MB each)")
    export.add_argument("--overwrite", action="store_true",
                        help="tflite: replace an existing file (a SavedModel version folder is "
                             "never replaced: export a new --version, which TF-Serving then serves)")
    export.add_argument("-o", "--output", required=True,
                        help="saved_model: the model base folder (writes OUTPUT/NAME/VERSION/); "
                             "tflite: the folder the .tflite file goes into")
    export.add_argument("--name", help="model name (default: the preset's)")
    export.add_argument("--version", type=int, default=1,
                        help="saved_model: the integer version folder (default: 1)")

    train = commands.add_parser("train", help="train (or resume) a model from a config")
    train.add_argument("config", help="training config (JSON), e.g. configs/fast_cpu.json")
    train.add_argument("-o", "--output", required=True,
                       help="run folder (an unfinished run of the same config there resumes)")
    train.add_argument("--data-dir", help="benchmark data folder (default: $DEEPAM_DATA)")
    train.add_argument("--epochs", type=_integer_at_least(1, "epochs"), help="stop after this many epochs")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2), default=_default_verbosity(),
                       help="Keras verbosity: 0 silent, 1 progress bar, 2 a line per epoch "
                            "(default: 1 on a terminal, 2 into a log file)")

    refit = commands.add_parser(
        "refit-head", help="refit a denoiser's last-stage head (after its gamma features) "
                           "under MSE at one sigma or a range, every other weight fixed")
    refit.add_argument("model", help="preset name or .keras file")
    levels = refit.add_mutually_exclusive_group(required=True)
    levels.add_argument("--sigma", type=_sigma, help="the noise level (0-255 scale)")
    levels.add_argument("--sigma-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="each noisy image's level drawn uniformly from [LOW, HIGH] "
                             "(noise-level-conditioned models)")
    refit.add_argument("-o", "--output", required=True, help="the refitted model (.keras)")
    refit.add_argument("--images", help="training image folder, one image size (default: "
                                        "<data>/denoise/train400 without its validation images)")
    refit.add_argument("--data-dir", help="benchmark data folder (default: $DEEPAM_DATA)")
    refit.add_argument("--first-layer", type=_integer_at_least(2, "first layer"),
                       help="first aggregation layer refitted (default: the one after the "
                            "gamma features, 9 in the presets)")
    refit.add_argument("--draws", type=_integer_at_least(1, "draws"), default=1,
                       help="noise draws per image (each draw's features are cached: about "
                            "3 GB per draw of 360 images of 180x180)")
    refit.add_argument("--loss", choices=["mse", "psnr"], default="mse",
                       help="mean squared error, or minus the mean PSNR over images")
    refit.add_argument("--epochs", type=_integer_at_least(1, "epochs"), default=35,
                       help="passes over the noisy images (all draws)")
    refit.add_argument("--batch-size", type=_integer_at_least(1, "batch size"), default=16)
    refit.add_argument("--learning-rate", type=_positive_number("learning rate"), default=3e-4,
                       help="Adam's rate, decayed by a cosine to 1%% over the run (default: 3e-4)")
    refit.add_argument("--seed", type=int, default=0, help="noise seed")
    refit.add_argument("--overwrite", action="store_true")
    refit.add_argument("--verbose", type=int, choices=(0, 1, 2), default=_default_verbosity(),
                       help="Keras verbosity: 0 silent, 1 progress bar, 2 a line per epoch "
                            "(default: 1 on a terminal, 2 into a log file)")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    import tensorflow as tf

    from deepam_tf.native_log import captured_native_stderr

    with captured_native_stderr():
        # The CUDA probe logs an error line on a machine without a GPU; the library leaves
        # it to the first op (probing at import would initialise CUDA before any fork).
        tf.config.list_physical_devices()
    try:
        if args.command == "denoise":
            if not args.inputs:
                args.output = args.output or DEMO_OUTPUT
                _demo(args)
                return 0
            return _denoise_files(args)
        if args.command == "upsample-depth":
            return _upsample_depth(args)
        if args.command == "restore-nir":
            return _restore_nir(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "export":
            return _export(args)
        if args.command == "refit-head":
            return _refit_head(args)
        if args.command == "train":
            from deepam_tf import train

            model = train.train(train.load_config(args.config), args.output, data_root=args.data_dir,
                                verbose=args.verbose, epochs=args.epochs)
            print(f"{int(model.optimizer.iterations.numpy())} steps; wrote "
                  f"{os.path.join(args.output, 'model.keras')} (history.csv, logs/ for TensorBoard)")
            return 0
    except (ValueError, OSError) as error:
        print(f"deepam: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Outputs are written to a temporary file and renamed: none is half-written.
        print("deepam: interrupted; outputs written so far are complete", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
