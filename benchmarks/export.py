"""Export benchmark: latency per 256x256 image of the Keras model, the SavedModel and
the TFLite model (CPU, 2 threads), the file sizes, the PSNR each reaches and its largest
pixel difference from the Keras output, for several unrolled PCG solves of the TFLite
form (preconditioner:iterations).

    python benchmarks/export.py --model denoise_blind [--solves dct:5 dct:8 jacobi:30]
        [--gpu-delegate] [--bfloat16]

``--bfloat16`` adds the SavedModel exported with ``--precision bfloat16`` (bfloat16
convolutions, float32 solve; fast only where the hardware computes bfloat16).
``--routed`` adds the SavedModel of ``deepam export auto`` (the blind presets routed by σ,
as released in ``exported/``; served here by the one for σ = 25), to show what routing costs.

``--gpu-delegate`` also runs the default TFLite model on LiteRT's GPU accelerator, in fp32
and fp16, on Mesa's lavapipe Vulkan driver (a software GPU: its times say nothing of a
phone's, so none are printed), in a process of its own (``tests/litert_gpu_runner.py``;
LiteRT's GPU accelerator and TensorFlow crash in one process).
"""

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from common import best_time, markdown_table  # noqa: E402
from litert_gpu_runner import LAVAPIPE, run_on_lavapipe  # noqa: E402


def folder_size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def run_on_gpu_accelerator(data, feeds, precision, work):
    """(output, fully accelerated) of a .tflite on LiteRT's GPU accelerator over lavapipe."""
    returncode, printed, output, fully_accelerated = run_on_lavapipe(data, feeds, precision, work)
    if returncode:
        raise SystemExit(f"GPU accelerator failed ({returncode}): {printed[-800:]}")
    return output, fully_accelerated


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="denoise_blind", help="preset name or .keras file")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--solves", nargs="+", default=["dct:5", "dct:8", "dct:10", "jacobi:30"],
                        help="unrolled TFLite solves to compare (fp32), as preconditioner:iterations")
    parser.add_argument("--bfloat16", action="store_true",
                        help="also time the SavedModel exported in mixed bfloat16")
    parser.add_argument("--routed", action="store_true",
                        help="also time the SavedModel routed by sigma (deepam export auto)")
    parser.add_argument("--gpu-delegate", action="store_true",
                        help="also run the default TFLite model on LiteRT's GPU accelerator (lavapipe)")
    args = parser.parse_args()
    if args.gpu_delegate and not os.path.exists(LAVAPIPE):
        raise SystemExit(f"--gpu-delegate needs Mesa's lavapipe Vulkan driver ({LAVAPIPE})")

    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from deepam_tf.export import export_saved_model, tflite
    from deepam_tf.export.release import split_bands
    from deepam_tf.models import load_preset, presets
    from deepam_tf.restore import blind_routes

    import skimage.data

    from deepam_tf import metrics

    solves = [(name, int(count)) for name, count in (spec.split(":") for spec in args.solves)]
    if args.gpu_delegate and ("dct", tflite.DEFAULT_ITERATIONS) not in solves:
        raise SystemExit(f"--gpu-delegate runs the default solve: add dct:{tflite.DEFAULT_ITERATIONS} to --solves")

    model = load_preset(args.model)
    n = args.size
    # A noisy camera crop (σ=25), so each format's restoration quality is measured too.
    clean = skimage.data.camera()[128 : 128 + n, 128 : 128 + n].astype(np.float32) / 255.0
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape).astype(np.float32)
    x = np.repeat(noisy[None, :, :, None], model.channels, axis=-1)

    reference = []

    def quality(output):
        output = np.asarray(output)[0, :, :, 0]
        reference.append(reference[0] if reference else output)
        gap = np.abs(output - reference[0]).max() * 255
        return [f"{metrics.psnr(clean, np.clip(output, 0, 1)):.2f}", f"{gap:.2f}"]

    feeds = {"image": x}
    if model.guidance_channels:
        feeds["guidance"] = np.random.default_rng(1).random((1, n, n, model.guidance_channels), np.float32)
    if model.noise_level_input:
        feeds["noise_level"] = np.full((1, 1), 25 / 255, np.float32)
    keras_inputs = feeds if len(feeds) > 1 else x
    work = tempfile.mkdtemp()
    rows = []

    predict = tf.function(lambda inputs: model(inputs, training=False))
    t = best_time(lambda: predict(keras_inputs).numpy(), repeats=3)
    psnr = quality(predict(keras_inputs))
    keras_file = presets.preset_file(args.model)
    rows.append(["Keras (DCT PCG, tol 1e-4)", f"{t * 1e3:.0f}", f"{os.path.getsize(keras_file) / 1e6:.1f}", *psnr])

    sm_feeds = {k: tf.constant(v) for k, v in feeds.items() if k != "noise_level"}
    if model.noise_level_input:
        sm_feeds["sigma"] = tf.constant([25.0])
    saved_models = [("SavedModel (TF-Serving)", model, ())]
    if args.bfloat16:
        saved_models.append(("SavedModel, mixed bfloat16", load_preset(args.model, dtype="mixed_bfloat16"), ()))
    if args.routed:
        routes = blind_routes("denoise")
        first, above = split_bands([(top, load_preset(name)) for top, name in routes])
        bands = ", ".join(f"{name} to {top:g}" for top, name in routes)
        saved_models.append((f"SavedModel routed by σ ({bands})", first, above))
    for index, (label, exported, above) in enumerate(saved_models):
        path = export_saved_model(exported, work, f"m{index}", 1, above)
        serve = tf.saved_model.load(path).signatures["serving_default"]
        t = best_time(lambda: serve(**sm_feeds)["restored"].numpy(), repeats=3)
        psnr = quality(serve(**sm_feeds)["restored"])
        rows.append([label, f"{t * 1e3:.0f}", f"{folder_size(path) / 1e6:.1f}", *psnr])

    variants = [(False, *solve) for solve in solves] + [(True, "dct", tflite.DEFAULT_ITERATIONS)]
    for float16, preconditioner, iterations in variants:
        data = tflite.convert(model, (n, n), iterations, float16, preconditioner)
        interpreter = Interpreter(model_content=data, num_threads=2)
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], next(v for k, v in feeds.items() if k in detail["name"]))
        t = best_time(interpreter.invoke, repeats=3)
        psnr = quality(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
        default = " (default)" if (preconditioner, iterations) == ("dct", tflite.DEFAULT_ITERATIONS) else ""
        label = f"TFLite {'fp16 weights' if float16 else 'fp32'}, {preconditioner} ×{iterations}{default}"
        rows.append([label, f"{t * 1e3:.0f}", f"{len(data) / 1e6:.1f}", *psnr])
        if args.gpu_delegate and default and not float16:
            cpu = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
            for precision in ("f32", "f16"):
                output, full = run_on_gpu_accelerator(data, feeds, precision, work)
                gap = np.abs(output - cpu).max() * 255
                rows.append([f"TFLite, GPU accelerator {precision} (lavapipe; fully accelerated: {full}; "
                             f"{gap:.2f}/255 from the CPU interpreter)", "–", f"{len(data) / 1e6:.1f}",
                             *quality(output)])

    print(f"{args.model}, one {n}x{n} crop of camera with σ=25 noise, CPU (TFLite: 2 threads)\n")
    print(markdown_table(["format", "ms per image", "size MB", "PSNR dB", "max |Δ| vs Keras, /255"], rows))


if __name__ == "__main__":
    main()
