"""Peak memory and time of whole-image vs exactly tiled DeepAM inference.

    python benchmarks/memory.py [--megapixels 1 4 16 50] [--stages 3] [--model PRESET]
        [--tile-size auto] [--untiled-limit 4]

Each measurement runs in a fresh process (peak RSS = the process's VmHWM, which includes
TensorFlow's own ~0.5 GB). The image is the camera picture tiled to a 4:3 frame of the
given size. Untiled runs stop at ``--untiled-limit`` megapixels (their memory grows with
the image: about 1.5 KB per pixel). Target (issue 7): <= 3 GB peak at 16 MP, tiled.
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import markdown_table  # noqa: E402

CHILD = r"""
import json, sys, time
sys.path.insert(0, {bench!r})
import numpy as np
from common import test_image
from deepam_tf import DeepAM
from deepam_tf.models import list_presets, load_preset
model = load_preset({model!r}) if {model!r} else DeepAM(stages={stages}, noise_level_input=True)
h, w = {height}, {width}
image = test_image((h, w))[None, :, :, None].astype(np.float32)
inputs = {{"image": image, "noise_level": np.full((1, 1), 0.1, np.float32)}} if model.noise_level_input else image
tile = {tile!r}
start = time.perf_counter()
out = model.predict(inputs, verbose=0, tile_size=None if tile == "none" else (tile if tile == "auto" else int(tile)))
seconds = time.perf_counter() - start
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({{"seconds": seconds, "peak_mb": int(peak) / 1024, "shape": list(out.shape)}}))
"""


def measure(megapixels, tile, args):
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(megapixels * 1e6 / width))
    code = CHILD.format(bench=os.path.dirname(os.path.abspath(__file__)), model=args.model or "",
                        stages=args.stages, height=height, width=width, tile=tile)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1][:120]}, (height, width)
    return json.loads(done.stdout.strip().splitlines()[-1]), (height, width)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--megapixels", nargs="+", type=float, default=[1, 4, 16, 50])
    parser.add_argument("--stages", type=int, default=3, help="untrained DeepAM(K) when no --model")
    parser.add_argument("--model", help="preset name or .keras file")
    parser.add_argument("--tile-size", default="auto")
    parser.add_argument("--untiled-limit", type=float, default=4)
    args = parser.parse_args()
    rows = []
    for mp in args.megapixels:
        modes = [args.tile_size] + (["none"] if mp <= args.untiled_limit else [])
        for tile in modes:
            result, (h, w) = measure(mp, tile, args)
            label = "untiled" if tile == "none" else f"tiled ({tile})"
            if "error" in result:
                rows.append([f"{mp:g}", f"{w}x{h}", label, "-", "-", result["error"]])
            else:
                rows.append([f"{mp:g}", f"{w}x{h}", label, f"{result['peak_mb']:.0f}",
                             f"{result['seconds']:.1f}", ""])
            print(" | ".join(rows[-1]), flush=True)
    print()
    print(markdown_table(["MP", "size", "mode", "peak RSS (MB)", "seconds", "note"], rows))


if __name__ == "__main__":
    main()
