"""Refreshes the ready-to-serve copies of the released presets (``exported/``):

    python -m deepam_tf.export.release exported [--force]

For each task of :data:`SAVED_MODELS`, a SavedModel at ``saved_model/<task>/1/`` that routes
each request by its σ to the blind preset ``deepam_tf.denoise``'s ``model="auto"`` takes
(:func:`deepam_tf.restore.blind_routes`); for each preset marked ``released`` in the preset
index, a TFLite model at ``tflite/<name>_<H>x<W>.tflite``. ``manifest.json`` lists each copy
with its export settings and a fingerprint of what made it (the preset files, the settings,
the TensorFlow and Keras versions, and the package sources the export runs). A copy whose
fingerprint is unchanged is kept; ``--force`` re-exports every copy. The exports are
deterministic (the SavedModel's variables in the models' order:
:func:`deepam_tf.export.saved_model.export_saved_model`), so a re-export whose graph and
weights did not change writes the same bytes and adds nothing to git history.
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
from deepam_tf.restore import blind_routes

# The SavedModels released: served model name -> the task whose blind presets it routes by σ.
SAVED_MODELS = {"denoise": "denoise"}

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


def fingerprint(kind, preset_files, settings):
    """The sha256 of what makes a ``kind`` ("saved_model" or "tflite") copy of the preset
    file(s) ``preset_files`` (one name or a list)."""
    if isinstance(preset_files, str):
        preset_files = [preset_files]
    digest = hashlib.sha256()
    digest.update(json.dumps({"kind": kind, "settings": settings, "tensorflow": tf.__version__,
                              "keras": keras.__version__}, sort_keys=True).encode())
    for path in [*(os.path.join(PRESET_DIR, f) for f in preset_files), *_source_files(SOURCES[kind])]:
        digest.update(os.path.relpath(path, PACKAGE).encode())
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()


def _planned(size, iterations):
    """``{"saved_model": {name: entry}, "tflite": {name: entry}}``: what the release holds,
    each entry with its path, settings and fingerprint, plus the presets it needs."""
    presets = list_presets()
    plan = {"saved_model": {}, "tflite": {}}
    for name, task in sorted(SAVED_MODELS.items()):
        bands = [[float(top), preset] for top, preset in blind_routes(task)]
        files = [presets[preset]["file"] for _, preset in bands]
        plan["saved_model"][name] = {
            "path": f"saved_model/{name}/1", "bands": bands,
            "fingerprint": fingerprint("saved_model", files, {"bands": bands}),
        }
    for name, info in sorted(presets.items()):
        if not info.get("released"):
            continue
        settings = {"size": list(size), "iterations": iterations, "preconditioner": PRECONDITIONER}
        plan["tflite"][name] = {
            "path": os.path.join("tflite", f"{name}_{size[0]}x{size[1]}.tflite"),
            "preset": info["file"], **settings,
            "fingerprint": fingerprint("tflite", info["file"], settings),
        }
    return plan


def split_bands(bands):
    """``(model, above)``, the arguments of :func:`export_saved_model`, from σ bands
    ``[(top, model), ...]`` as :func:`deepam_tf.restore.blind_routes` gives them (with
    presets loaded): the first band's model, and each later one above the previous top."""
    return bands[0][1], [(top, model) for (top, _), (_, model) in zip(bands, bands[1:])]


def _export(kind, name, entry, folder):
    path = os.path.join(folder, entry["path"])
    if kind == "saved_model":
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
        model, above = split_bands([(top, load_preset(preset)) for top, preset in entry["bands"]])
        export_saved_model(model, os.path.dirname(os.path.dirname(path)), name, 1, above)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        export_tflite(load_preset(name), path, tuple(entry["size"]), entry["iterations"], overwrite=True)


def refresh(folder, size=DEFAULT_SIZE, iterations=DEFAULT_ITERATIONS, force=False):
    """Re-exports the release's copies into ``folder`` where their fingerprint changed
    (every copy with ``force``), removes copies the release no longer holds, prints what it
    did, and returns the manifest."""
    manifest_path = os.path.join(folder, "manifest.json")
    previous = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as handle:
            previous = json.load(handle)
    manifest = _planned(size, iterations)
    for kind, entries in manifest.items():
        old_entries = previous.get(kind, {}) if isinstance(previous.get(kind), dict) else {}
        for name, entry in entries.items():
            stale = force or old_entries.get(name) != entry or not os.path.exists(
                os.path.join(folder, entry["path"]))
            if stale:
                _export(kind, name, entry, folder)
            print(f"{kind} {name}: {'re-exported' if stale else 'unchanged, kept'}")
        for name, old in old_entries.items():
            if name not in entries and "path" in old:
                _remove(folder, kind, old["path"])
                print(f"{kind} {name}: no longer released, removed")
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
    return manifest


def _remove(folder, kind, path):
    path = os.path.join(folder, path)
    if kind == "saved_model":
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)  # saved_model/<name>/
    elif os.path.exists(path):
        os.remove(path)


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
