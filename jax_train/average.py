"""Averages the weights of ``train.py`` outputs that continued one model (a "model soup",
Wortsman et al., ICML 2022) into one output that ``convert.py`` reads.

    python jax_train/average.py out/soup.npz out/run_a.npz out/run_b.npz ...

The runs must share the model config and every weight path and shape (their data may
differ, e.g. σ ranges; the output keeps the first run's config); batch-norm statistics
are averaged like the other weights. Fine-tunes of one starting point stay in one basin
of the loss, so their average is usually at least as good as the best of them, at no
cost at inference. Imports numpy only.
"""

import argparse
import json
import os

import numpy as np

from convert import weights_of


def average(paths):
    """``{npz key: array}`` of the weight-space mean of the ``train.py`` outputs ``paths``."""
    if len(paths) < 2:
        raise ValueError("average needs at least two train.py outputs")
    runs = [weights_of(p) for p in paths]
    config, first, _ = runs[0]
    for path, (other_config, weights, _) in zip(paths[1:], runs[1:]):
        if other_config["model"] != config["model"]:
            raise ValueError(f"{path}: another model config than {paths[0]}")
        if sorted(weights) != sorted(first):
            raise ValueError(f"{path}: other weights than {paths[0]}")
        for k, value in weights.items():
            if value.shape != first[k].shape:
                raise ValueError(f"{path}: {k} has shape {value.shape}, {paths[0]} {first[k].shape}")
    arrays = {"weight:" + k: np.mean([w[k] for _, w, _ in runs], axis=0).astype(v.dtype)
              for k, v in first.items()}
    arrays["config"] = np.array(json.dumps(config))
    members = [dict(log or {}, file=os.path.basename(p)) for p, (_, _, log) in zip(paths, runs)]
    arrays["log"] = np.array(json.dumps({"average_of": members}))
    return arrays


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("inputs", nargs="+")
    args = parser.parse_args(argv)
    if os.path.exists(args.output):
        raise FileExistsError(f"{args.output} exists; not overwritten")
    arrays = average(args.inputs)
    np.savez(args.output, **arrays)
    print(f"{args.output}: mean of {len(args.inputs)} runs, "
          f"{sum(k.startswith('weight:') for k in arrays)} weights")


if __name__ == "__main__":
    main()
