"""Refreshes the ready-to-serve copies of the released presets (``exported/``):

    python -m deepam_tf.export.release exported

For each preset marked ``released`` in the preset index: a SavedModel at
``saved_model/<name>/1/`` and a TFLite model at ``tflite/<name>_<H>x<W>.tflite``, listed in
``manifest.json`` with their export settings. Existing copies are replaced.
"""

import argparse
import json
import os
import shutil

from deepam_tf.export.saved_model import export_saved_model
from deepam_tf.export.tflite import DEFAULT_ITERATIONS, DEFAULT_SIZE, PRECONDITIONER, export_tflite
from deepam_tf.models import list_presets, load_preset


def refresh(folder, size=DEFAULT_SIZE, iterations=DEFAULT_ITERATIONS):
    """Re-exports every released preset into ``folder``; returns the manifest."""
    manifest = {}
    for name, info in sorted(list_presets().items()):
        if not info.get("released"):
            continue
        model = load_preset(name)
        saved = os.path.join(folder, "saved_model", name)
        shutil.rmtree(saved, ignore_errors=True)
        export_saved_model(model, os.path.join(folder, "saved_model"), name, 1)
        os.makedirs(os.path.join(folder, "tflite"), exist_ok=True)
        lite = os.path.join("tflite", f"{name}_{size[0]}x{size[1]}.tflite")
        export_tflite(model, os.path.join(folder, lite), size, iterations, overwrite=True)
        manifest[name] = {
            "saved_model": f"saved_model/{name}/1",
            "tflite": lite,
            "tflite_size": list(size),
            "tflite_iterations": iterations,
            "tflite_preconditioner": PRECONDITIONER,
            "preset": info["file"],
        }
    with open(os.path.join(folder, "manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="exported",
                        help="the release folder (its copies are replaced; default: exported)")
    print(json.dumps(refresh(parser.parse_args(argv).folder), indent=2))


if __name__ == "__main__":
    main()
