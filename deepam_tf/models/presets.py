"""Shipped weights: ``list_presets()`` and ``load_preset(name)`` (also ``DeepAM.from_preset``).

A preset is a ``.keras`` file in ``deepam_tf/presets/`` with an entry in its
``index.json`` (task, noise range, training recipe, measured metrics). ``load_preset``
also takes the path of any ``.keras`` file.
"""

import json
import os
import re
import zipfile

import keras

PRESET_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "presets")


def _stored_index():
    path = os.path.join(PRESET_DIR, "index.json")
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def _write_index(index):
    with open(os.path.join(PRESET_DIR, "index.json"), "w") as handle:
        json.dump(index, handle, indent=2, sort_keys=True)


def _index():
    """The stored index with each alias completed from its target: the target's file and
    its PSNRs at the alias's σ, so a retrained target never leaves stale alias numbers."""
    index = _stored_index()
    return {name: _resolve_alias(meta, index) for name, meta in index.items()}


def _resolve_alias(meta, index):
    if "alias_of" not in meta:
        return meta
    target = index[meta["alias_of"]]
    sigma = f"{meta['sigma']:g}"
    derived = {"file": target["file"]}
    psnr = {dataset: {sigma: values[sigma]}
            for dataset, values in target.get("psnr", {}).items() if sigma in values}
    if psnr:
        derived["psnr"] = psnr
    return dict(sorted({**meta, **derived}.items()))


def list_presets():
    """``{name: metadata}`` of the presets shipped with the package."""
    return _index()


def preset_file(name):
    """The ``.keras`` file of a shipped preset ``name``, or ``name`` itself when it is the
    path of a file; ValueError naming the problem otherwise."""
    name = os.fspath(name)
    if os.path.isfile(name):
        return name
    if os.path.isdir(name):
        raise ValueError(f"model {name} is a folder; give a .keras file or a preset name")
    if name.endswith(".keras") or os.sep in name:
        raise ValueError(f"model file {name} does not exist")
    index = _index()
    if name not in index:
        shipped = ", ".join(sorted(index)) or "none yet"
        raise ValueError(f"unknown preset {name!r}; shipped presets: {shipped}")
    return os.path.join(PRESET_DIR, index[name]["file"])


def load_preset(name, dtype=None):
    """Loads a shipped preset by name, or a ``.keras`` file by path; ``dtype``: a Keras
    dtype policy to run it in (e.g. ``"mixed_bfloat16"``), default the stored one."""
    path = preset_file(name)
    # Registers the deepam_tf layers before deserialising.
    from deepam_tf.models.deepam import DeepAM

    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a .keras model file (a .keras file is a zip archive)")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises ValueError, zipfile and JSON errors alike
        raise ValueError(f"{path}: not a readable .keras model ({error})") from None
    if not isinstance(model, DeepAM):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a deepam_tf DeepAM model")
    return model if dtype is None else with_dtype(model, dtype)


def with_dtype(model, dtype):
    """``model`` (a DeepAM) in Keras dtype policy ``dtype``, e.g. ``"mixed_bfloat16"``: the
    model itself if it has that policy, else a copy with the same weights."""
    from deepam_tf.models.deepam import DeepAM

    if keras.dtype_policies.get(dtype).name == model.policy.name:
        return model
    converted = DeepAM.from_config({**model.get_config(), "dtype": dtype})
    converted.set_weights(model.get_weights())  # the variables stay float32 in any policy
    return converted


def save_preset(model, name, **metadata):
    """Saves ``model`` (weights and config, no optimizer state) as preset ``name`` in the
    package and records ``metadata`` (e.g. ``psnr``, recipe) in ``index.json``. A
    denoiser records ``camera_sigmaS_psnr`` (skimage's camera at its σ, noise seed 0) and
    ``camera_sigmaS_floor``: the quality test fails when the preset falls under the floor
    or no longer gives the recorded PSNR."""
    os.makedirs(PRESET_DIR, exist_ok=True)
    file = f"{name}.keras"
    model.save(os.path.join(PRESET_DIR, file), include_optimizer=False)
    index = _stored_index()
    index[name] = {"file": file, **metadata}
    _write_index(index)


# Where shipped denoisers are checked in bfloat16 against float32 (tests, and
# benchmarks/precision.py --camera): the nearly flat sky of skimage.data.camera(), where a
# rounded image shows first, and its centre.
CAMERA_CROPS = {"sky": (slice(0, 128), slice(0, 128)), "centre": (slice(128, 384), slice(128, 384))}


def camera_floor(meta):
    """``(σ, floor)`` of a denoiser's ``camera_sigmaS_floor`` entry (see
    :func:`save_preset`) in its index metadata ``meta``; ``None`` if it has none."""
    for key, floor in meta.items():
        if re.fullmatch(r"camera_sigma\d+_floor", key):
            return int(key[len("camera_sigma"):-len("_floor")]), floor
    return None


def add_alias(name, target, sigma, **metadata):
    """Registers preset ``name`` as ``target``'s weights with σ fixed (a fixed-σ entry for
    a noise-level-conditioned model). Its file and PSNRs are read from ``target``."""
    index = _stored_index()
    if target not in index:
        raise ValueError(f"unknown preset {target!r}")
    index[name] = {"alias_of": target, "sigma": sigma, **metadata}
    _write_index(index)
