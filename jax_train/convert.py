"""Loads weights trained by ``train.py`` into the Keras DeepAM and saves a ``.keras`` file.

    python jax_train/convert.py out/depth_x8.npz depth_x8.keras
    python jax_train/convert.py out/run.ema.npz run_ema.keras --batch-norm

A run trained with batch norm frozen is saved frozen (``DeepAM(freeze_batch_norm=True)``),
so that training it further keeps its statistics. ``--batch-norm`` recomputes the
batch-norm statistics for the weights on training patches of the run's config
(``deepam_tf.train.recompute_batch_norm``; needs the data folder, ``DEEPAM_DATA``): for
a moving average or a mean of runs, whose averaged statistics belong to no single set of
weights. It refuses a run trained with
``--freeze-batch-norm`` (or an average holding one): that run's statistics are its
starting model's, which its weights were fitted to, and its config may hold one σ only.

Every Keras weight must be found by path with the same shape, and no trained weight
may be left over: a mismatch is an error, never a partial load.
"""

import argparse
import json
import os

import numpy as np


KERAS_WEIGHTS = "model.weights.h5"  # the weights' member of a .keras zip
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # a pack names presets from here


def weights_of(path):
    """``(config, {keras path: array}, training log or None)`` of a ``train.py`` output."""
    pack = np.load(path)
    config = json.loads(str(pack["config"]))
    weights = {k[len("weight:"):]: pack[k] for k in pack.files if k.startswith("weight:")}
    log = json.loads(str(pack["log"])) if "log" in pack.files else None
    return config, weights, log


def check_same_weights(weights, reference, what, reference_name):
    """Refuses ``weights`` (``{keras path: array}``, from ``what``) unless they hold the
    same paths with the same shapes as ``reference`` (from ``reference_name``)."""
    if sorted(weights) != sorted(reference):
        raise ValueError(f"{what}: other weights than {reference_name}")
    for k, value in weights.items():
        if value.shape != reference[k].shape:
            raise ValueError(f"{what}: {k} has shape {value.shape}, {reference_name} {reference[k].shape}")


def keras_weights(path, keras_map):
    """``({keras path: array}, frozen)`` of a ``.keras`` file, read with h5py alone:
    ``keras_map`` (a pack's, from ``pack.keras_map``) says where each weight lies. Every
    weight must be there, and nothing else; ``frozen`` is the saved model's
    ``freeze_batch_norm``."""
    import zipfile

    import h5py

    found = {}
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        with archive.open(KERAS_WEIGHTS) as member, h5py.File(member, "r") as stored:
            stored.visititems(lambda name, item: found.__setitem__(name, item[()])
                              if isinstance(item, h5py.Dataset) else None)
    if set(found) != set(keras_map):
        missing, extra = sorted(set(keras_map) - set(found)), sorted(set(found) - set(keras_map))
        raise ValueError(f"{path} holds another model than the pack's: missing {missing[:3]}, "
                         f"extra {extra[:3]}")
    frozen = bool(config.get("config", {}).get("freeze_batch_norm"))
    return {keras_map[name]: value for name, value in found.items()}, frozen


def load_into(model, weights):
    """Assigns ``weights`` to ``model`` by Keras weight path (all or nothing)."""
    paths = {w.path: w for w in model.weights}
    missing = sorted(set(paths) - set(weights))
    extra = sorted(set(weights) - set(paths))
    if missing or extra:
        raise ValueError(f"weights do not match the model: missing {missing[:5]}, extra {extra[:5]}")
    for path, variable in paths.items():
        if tuple(variable.shape) != weights[path].shape:
            raise ValueError(f"{path}: model shape {tuple(variable.shape)}, weights {weights[path].shape}")
    for path, variable in paths.items():
        variable.assign(weights[path])
    return model


def froze_batch_norm(log):
    """Whether a ``train.py`` output (or any run of an average) kept batch norm frozen."""
    runs = (log or {}).get("average_of", [log or {}])
    return any(run.get("recipe", {}).get("freeze_batch_norm") for run in runs)


def describe_average(coefficients):
    """``"mean of N runs"``, or ``"combination (c1 c2 ...) of N runs"`` for other weights."""
    n = len(coefficients)
    if np.allclose(coefficients, 1.0 / n):
        return f"mean of {n} runs"
    return f"combination ({' '.join(f'{c:g}' for c in coefficients)}) of {n} runs"


def convert(path, output, batch_norm=False):
    from deepam_tf import train

    config, weights, log = weights_of(path)
    if os.path.exists(output):
        raise FileExistsError(f"{output} exists; not overwritten")
    frozen = froze_batch_norm(log)
    if batch_norm and frozen:
        raise ValueError(f"{path} was trained with its batch norm frozen: its statistics are "
                         "the ones its weights were fitted to; convert it without --batch-norm")
    if frozen:  # saved as trained: a model.fit that continues it keeps batch norm fixed
        config = {**config, "model": {**config["model"], "freeze_batch_norm": True}}
    model = load_into(train.build_model(config), weights)
    if batch_norm:
        train.recompute_batch_norm(model, train.batch_norm_batches(config))
    model.save(output)
    if log and "average_of" in log:
        members = log["average_of"]  # averages made before --coefficients hold none: a mean
        detail = ", " + describe_average([m.get("coefficient", 1.0 / len(members)) for m in members])
    else:
        detail = f", {log['steps']} steps on {log['device']}" if log else ""
    recomputed = ", batch-norm statistics recomputed" if batch_norm else ""
    recomputed += ", batch norm frozen as in training" if frozen else ""
    print(f"{output}: {len(weights)} weights{detail}{recomputed}")
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("output")
    parser.add_argument("--batch-norm", action="store_true",
                        help="recompute the batch-norm statistics on the run's training patches")
    args = parser.parse_args(argv)
    convert(args.weights, args.output, args.batch_norm)


if __name__ == "__main__":
    main()
