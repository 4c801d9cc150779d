"""Refreshes the ready-to-serve copies of the released presets (``exported/``):

    python -m deepam_tf.export.release exported [--force]

For each preset marked ``released`` in the preset index: a SavedModel at
``saved_model/<name>/1/`` and a TFLite model at ``tflite/<name>_<H>x<W>.tflite``, listed in
``manifest.json`` with their export settings and a fingerprint of what made them (the preset
file, the settings, the TensorFlow and Keras versions, and the package sources the export
runs). A copy whose fingerprint is unchanged is kept: TensorFlow writes a SavedModel's
variables and functions in a different order each time, so an identical re-export would
still add megabytes to git history. ``--force`` re-exports every copy.
"""

import argparse
import hashlib
import json
import os
import shutil

import keras
import tensorflow as tf

from deepam_tf.export.saved_model import export_saved_model
from deepam_tf.export.tflite import DEFAULT_ITERATIONS, DEFAULT_SIZE, PRECONDITIONER, export_tflite
from deepam_tf.models import list_presets, load_preset
from deepam_tf.models.presets import PRESET_DIR

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The package sources each export runs, relative to the package (folders: every .py in them).
# (models/tiling.py and models/ensemble.py serve predict, not the exports.)
_MODEL = ("colour.py", "models/deepam.py", "models/presets.py", "layers", "ops")
SOURCES = {
    "saved_model": ("export/saved_model.py", "export/serving_image.py") + _MODEL,
    "tflite": ("export/tflite.py",) + _MODEL,
}


def _source_files(entries):
    for entry in entries:
        path = os.path.join(PACKAGE, entry)
        if os.path.isdir(path):
            yield from sorted(os.path.join(path, name) for name in os.listdir(path)
                              if name.endswith(".py"))
        else:
            yield path


def fingerprint(kind, preset_file, settings):
    """The sha256 of what makes a ``kind`` ("saved_model" or "tflite") copy of a preset."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"kind": kind, "settings": settings, "tensorflow": tf.__version__,
                              "keras": keras.__version__}, sort_keys=True).encode())
    for path in [os.path.join(PRESET_DIR, preset_file), *_source_files(SOURCES[kind])]:
        digest.update(os.path.relpath(path, PACKAGE).encode())
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()


def refresh(folder, size=DEFAULT_SIZE, iterations=DEFAULT_ITERATIONS, force=False):
    """Re-exports each released preset's copies into ``folder`` where their fingerprint
    changed (every copy with ``force``), printing what it did; returns the manifest."""
    manifest_path = os.path.join(folder, "manifest.json")
    previous = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as handle:
            previous = json.load(handle)
    manifest = {}
    for name, info in sorted(list_presets().items()):
        if not info.get("released"):
            continue
        lite = os.path.join("tflite", f"{name}_{size[0]}x{size[1]}.tflite")
        entry = {
            "saved_model": f"saved_model/{name}/1",
            "tflite": lite,
            "tflite_size": list(size),
            "tflite_iterations": iterations,
            "tflite_preconditioner": PRECONDITIONER,
            "preset": info["file"],
        }
        entry["fingerprints"] = {
            "saved_model": fingerprint("saved_model", info["file"], {}),
            "tflite": fingerprint("tflite", info["file"], {
                "size": list(size), "iterations": iterations, "preconditioner": PRECONDITIONER}),
        }
        old = previous.get(name, {})
        stale = [kind for kind in ("saved_model", "tflite")
                 if force or old.get(kind) != entry[kind]
                 or old.get("fingerprints", {}).get(kind) != entry["fingerprints"][kind]
                 or not os.path.exists(os.path.join(folder, entry[kind]))]
        model = load_preset(name) if stale else None
        if "saved_model" in stale:
            shutil.rmtree(os.path.join(folder, "saved_model", name), ignore_errors=True)
            export_saved_model(model, os.path.join(folder, "saved_model"), name, 1)
        if "tflite" in stale:
            os.makedirs(os.path.join(folder, "tflite"), exist_ok=True)
            export_tflite(model, os.path.join(folder, lite), size, iterations, overwrite=True)
        manifest[name] = entry
        print(f"{name}: {'re-exported ' + ' and '.join(stale) if stale else 'unchanged, kept'}")
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="exported",
                        help="the release folder (default: exported)")
    parser.add_argument("--force", action="store_true",
                        help="re-export every copy, also those whose fingerprint is unchanged")
    args = parser.parse_args(argv)
    refresh(args.folder, force=args.force)


if __name__ == "__main__":
    main()
