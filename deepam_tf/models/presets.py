"""Shipped weights: ``list_presets()`` and ``load_preset(name)`` (also ``DeepAM.from_preset``).

A preset is a ``.keras`` file in ``deepam_tf/presets/`` with an entry in its
``index.json`` (task, noise range, training recipe, measured metrics). ``load_preset``
also takes the path of any ``.keras`` file.
"""

import json
import os

import keras

PRESET_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "presets")


def _index():
    path = os.path.join(PRESET_DIR, "index.json")
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def list_presets():
    """``{name: metadata}`` of the presets shipped with the package."""
    return _index()


def load_preset(name):
    """Loads a shipped preset by name, or a ``.keras`` file by path."""
    if os.path.isfile(str(name)):
        path = str(name)
    else:
        index = _index()
        if name not in index:
            shipped = ", ".join(sorted(index)) or "none yet"
            raise ValueError(f"unknown preset {name!r}; shipped presets: {shipped}")
        path = os.path.join(PRESET_DIR, index[name]["file"])
    # Registers the deepam_tf layers before deserialising.
    from deepam_tf.models import deepam  # noqa: F401

    return keras.models.load_model(path, compile=False)


def save_preset(model, name, **metadata):
    """Saves ``model`` (weights and config, no optimizer state) as preset ``name`` in the
    package and records ``metadata`` (e.g. ``psnr``, ``camera_sigma25_floor``, recipe) in
    ``index.json``."""
    os.makedirs(PRESET_DIR, exist_ok=True)
    file = f"{name}.keras"
    model.save(os.path.join(PRESET_DIR, file), include_optimizer=False)
    index = _index()
    index[name] = {"file": file, **metadata}
    with open(os.path.join(PRESET_DIR, "index.json"), "w") as handle:
        json.dump(index, handle, indent=2, sort_keys=True)


def add_alias(name, target, **metadata):
    """Registers preset ``name`` as another name of ``target``'s weights (e.g. a fixed-σ
    entry for a noise-level-conditioned model), with its own ``metadata``."""
    index = _index()
    if target not in index:
        raise ValueError(f"unknown preset {target!r}")
    index[name] = {"file": index[target]["file"], "alias_of": target, **metadata}
    with open(os.path.join(PRESET_DIR, "index.json"), "w") as handle:
        json.dump(index, handle, indent=2, sort_keys=True)
