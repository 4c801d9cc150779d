"""DeepAM(3) speed: inference time per size, achieved conv GFLOP/s, the reconstruction's
share, peak memory, one training step on 64 patches of 32x32, and what the first
``deepam_tf.denoise`` call of a process costs (import, preset load and tracing).

    python benchmarks/speed.py [--weights model.keras]

Each size runs in its own process so its peak RSS is its own.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import best_time, markdown_table, test_image  # noqa: E402

SIZES = [(256, 256), (321, 481), (1024, 1024)]


def conv_flops_per_pixel(model):
    total = 0
    for weight in model.trainable_weights:
        if len(weight.shape) == 4:  # a conv kernel, kh x kw x cin x cout
            kh, kw, cin, cout = weight.shape
            total += 2 * kh * kw * cin * cout
    return total


def measure(size, weights):
    import keras
    import tensorflow as tf

    from deepam_tf import DeepAM, ops

    model = keras.models.load_model(weights) if weights else DeepAM(stages=3, channels=1)
    image = test_image(size)[None, :, :, None]
    noisy = image + np.random.default_rng(0).normal(0, 25 / 255, image.shape).astype(np.float32)
    inputs = noisy
    if getattr(model, "noise_level_input", False):
        inputs = {"image": noisy, "noise_level": np.full((1, 1), 25 / 255, np.float32)}
    predict = tf.function(lambda x: model(x, training=False))
    t_model = best_time(lambda: predict(inputs).numpy(), repeats=3)

    # The reconstruction alone, with this model's own v and γ at each stage.
    stage_inputs = []
    u = tf.constant(noisy)
    noise_map = None
    if isinstance(inputs, dict):
        noise_map = model.get_layer("noise_level_map")(u, inputs["noise_level"])
    for k in range(1, model.stages + 1):
        v, feats = model.get_layer(f"stage{k}_aggregation")(u, conditioning=noise_map, training=False)
        gamma = model.get_layer(f"stage{k}_gamma")(feats)
        stage_inputs.append((v, gamma))
        u = model.get_layer(f"stage{k}_reconstruction")(tf.constant(noisy), v, gamma)
    layer = model.get_layer("stage1_reconstruction")
    solve = tf.function(lambda f, v, g: layer(f, v, g))
    t_recon = sum(
        best_time(lambda: solve(tf.constant(noisy), v, g).numpy(), repeats=3) for v, g in stage_inputs
    )
    flops = conv_flops_per_pixel(model) * size[0] * size[1]
    return {
        "size": f"{size[1]}x{size[0]}",
        "seconds": t_model,
        "gflops": flops / t_model / 1e9,
        "recon_share": t_recon / t_model,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params": model.count_params(),
        "mflop_per_pixel": conv_flops_per_pixel(model) / 1e6,
    }


def training_step():
    import keras
    import tensorflow as tf

    from deepam_tf import DeepAM

    model = DeepAM(stages=3, channels=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae")
    x = tf.random.uniform([64, 32, 32, 1])
    model.train_on_batch(x, x)
    seconds = best_time(lambda: model.train_on_batch(x, x), repeats=3)
    flops = 3 * conv_flops_per_pixel(model) * 64 * 32 * 32  # forward + two backward convs
    return {"seconds": seconds, "gflops": flops / seconds / 1e9,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def first_call(preset="denoise_sigma25", size=(321, 481)):
    """A fresh process's import of deepam_tf, its first denoise call (which loads the
    preset and traces each stage) and a later call, on a BSD68-sized image."""
    start = time.perf_counter()
    from deepam_tf import denoise

    imported = time.perf_counter() - start
    image = test_image(size)
    noisy = image + np.random.default_rng(0).normal(0, 25 / 255, image.shape).astype(np.float32)
    start = time.perf_counter()
    denoise(noisy, 25, model=preset)
    first = time.perf_counter() - start
    later = best_time(lambda: denoise(noisy, 25, model=preset), repeats=2, warmup=0)
    return {"import": imported, "first": first, "later": later, "preset": preset,
            "size": f"{size[1]}x{size[0]}"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        named = {"train": training_step, "first": first_call}
        result = named[args.one]() if args.one in named else measure(tuple(json.loads(args.one)), args.weights)
        print("RESULT " + json.dumps(result))
        return

    def run(one):
        command = [sys.executable, __file__, "--one", one] + (["--weights", args.weights] if args.weights else [])
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        return json.loads(out.split("RESULT ", 1)[1])

    rows = []
    for size in SIZES:
        r = run(json.dumps(size))
        rows.append([r["size"], f"{r['seconds']:.2f}", f"{r['gflops']:.0f}",
                     f"{100 * r['recon_share']:.1f}%", f"{r['peak_rss_mb']:.0f}"])
    print(f"DeepAM(3), {r['params'] / 1e6:.2f} M parameters, {r['mflop_per_pixel']:.2f} MFLOP per pixel "
          f"(convolutions); {'weights ' + args.weights if args.weights else 'untrained weights'}\n")
    print(markdown_table(["image (WxH)", "inference s", "conv GFLOP/s", "reconstruction share",
                          "peak RSS MB"], rows))
    t = run("train")
    print(f"\nOne training step, 64 patches of 32x32 (Adam): {t['seconds']:.2f} s, "
          f"{t['gflops']:.0f} GFLOP/s, peak RSS {t['peak_rss_mb']:.0f} MB")
    f = run("first")
    print(f"\nA fresh process, {f['size']}, deepam_tf.denoise with preset {f['preset']}: import "
          f"{f['import']:.2f} s, first call {f['first']:.2f} s, later calls {f['later']:.2f} s "
          f"(loading and tracing: {f['first'] - f['later']:.2f} s)")


if __name__ == "__main__":
    main()
