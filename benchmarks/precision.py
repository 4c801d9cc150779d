"""float32 against mixed bfloat16 for a shipped preset: PSNR on the same noisy images,
inference time per image, and one training step, all measured in this run.

    python benchmarks/precision.py [--model denoise_blind] [--sets set12 bsd68]
        [--sigmas 15 25 50] [--limit N] [--data-dir DIR]
    python benchmarks/precision.py --sets        # the training steps only
    python benchmarks/precision.py --camera      # camera crops, every shipped denoiser

Under ``mixed_bfloat16`` the convolutions and batch-norms compute in bfloat16 with float32
weights; the reconstruction solves in float32 (``DeepAM(dtype=...)``). bfloat16 is fast only
where the hardware has it (x86 CPUs with AVX512-BF16 or AMX, recent GPUs); elsewhere it
emulates and is slower than float32, which this script shows as a ratio below 1.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import best_time, markdown_table  # noqa: E402

from deepam_tf import data, evaluation, hardware  # noqa: E402
from deepam_tf.models import load_preset  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")


def bfloat16_flags():
    """This CPU's bfloat16 feature flags, for the table's caption."""
    found = sorted(hardware.cpu_flags() & hardware.BFLOAT16_FLAGS)
    return ", ".join(found) or "no bfloat16 instructions"


def training_step_seconds(model, batch):
    import keras
    import tensorflow as tf

    from deepam_tf import DeepAM

    trainable = DeepAM.from_config(model.get_config())
    trainable.compile(optimizer=keras.optimizers.Adam(1e-5), loss="mae")
    clean = tf.random.uniform([batch, 32, 32, 1], seed=0)
    inputs = {"image": clean, "noise_level": tf.fill([batch, 1], 25 / 255)}
    if not model.noise_level_input:
        inputs = clean
    trainable.train_on_batch(inputs, clean)
    return best_time(lambda: trainable.train_on_batch(inputs, clean), repeats=5)


def camera_crops():
    """Each shipped denoiser at the σ of its quality floor on two crops of camera (seed 0):
    the RMS difference of its bfloat16 and float32 outputs and their PSNR difference."""
    import skimage.data

    from deepam_tf import denoise, list_presets, metrics
    from deepam_tf.models.presets import CAMERA_CROPS, camera_floor

    camera = skimage.data.camera().astype(np.float32) / 255
    rows = []
    for name, meta in list_presets().items():
        floor = camera_floor(meta)
        if meta.get("task") != "denoise" or "alias_of" in meta or floor is None:
            continue
        sigma = floor[0]
        row = [name, sigma]
        for crop in CAMERA_CROPS.values():
            clean = camera[crop]
            noisy = clean + np.random.default_rng(0).normal(0, sigma / 255, clean.shape).astype(np.float32)
            full, half = (denoise(noisy, sigma, model=name, precision=p) for p in ("float32", "bfloat16"))
            row += [f"{np.sqrt(np.mean((half - full) ** 2)) * 255:.3f}",
                    f"{metrics.psnr(clean, half) - metrics.psnr(clean, full):+.3f}"]
        rows.append(row)
    print("bfloat16 against float32 on camera crops (sky: [:128, :128], centre: [128:384, 128:384])\n")
    print(markdown_table(["preset", "σ", "sky RMS /255", "sky dB", "centre RMS /255", "centre dB"], rows))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="denoise_blind", help="preset name or .keras file")
    parser.add_argument("--sets", nargs="*", default=["set12", "bsd68"],
                        help="sets to evaluate (none: the training steps only)")
    parser.add_argument("--sigmas", nargs="+", type=float, default=[15, 25, 50])
    parser.add_argument("--limit", type=int, help="first N images of each set only")
    parser.add_argument("--data-dir")
    parser.add_argument("--camera", action="store_true",
                        help="only the camera crops of every shipped denoiser (no data needed)")
    args = parser.parse_args()
    if args.camera:
        return camera_crops()
    models = {policy: load_preset(args.model, dtype=policy) for policy in POLICIES}
    root = data.data_dir(args.data_dir)
    rows = []
    for name in args.sets:
        folder = os.path.join(root, "denoise", name)
        for sigma in args.sigmas:
            results = {
                policy: evaluation.evaluate_restorer(
                    evaluation.model_restore_fn(model), folder, sigma, limit=args.limit)
                for policy, model in models.items()
            }
            full, half = (results[p] for p in POLICIES)
            worst = max(abs(a["psnr"] - b["psnr"]) for a, b in zip(full[:-1], half[:-1]))
            rows.append([
                name, f"{sigma:g}", len(full) - 1,
                f"{full[-1]['psnr']:.3f}", f"{half[-1]['psnr']:.3f}",
                f"{half[-1]['psnr'] - full[-1]['psnr']:+.3f}", f"{worst:.3f}",
                f"{full[-1]['seconds']:.2f}", f"{half[-1]['seconds']:.2f}",
                f"{full[-1]['seconds'] / half[-1]['seconds']:.2f}x",
            ])
    if rows:
        print(f"{args.model}, float32 against mixed_bfloat16 on the same noisy images "
              f"({evaluation.PROTOCOL})\n")
        print(markdown_table(
            ["set", "σ", "images", "float32 PSNR", "bf16 PSNR", "bf16 − f32", "max |Δ| per image",
             "f32 s/img", "bf16 s/img", "speed-up"], rows))
    steps = []
    for batch in (16, 64):
        times = [training_step_seconds(models[p], batch) for p in POLICIES]
        steps.append([batch, f"{times[0]:.2f}", f"{times[1]:.2f}", f"{times[0] / times[1]:.2f}x"])
    print(f"\nOne Adam training step on 32x32 patches (best of 5; CPU flags: {bfloat16_flags()}):\n")
    print(markdown_table(["batch", "float32 s", "mixed_bfloat16 s", "speed-up"], steps))


if __name__ == "__main__":
    main()
