"""Averages the weights of ``train.py`` outputs that continued one model (a "model soup",
Wortsman et al., ICML 2022) into one output that ``convert.py`` reads.

    python jax_train/average.py out/soup.npz out/run_a.npz out/run_b.npz ...

The runs must share the config and every weight path and shape; batch-norm statistics
are averaged like the other weights. Fine-tunes of one starting point stay in one basin
of the loss, so their average is usually at least as good as the best of them, at no
cost at inference. Imports numpy only.
"""

import argparse
import json
import os

import numpy as np


def average(paths):
    """``{npz key: array}`` of the weight-space mean of the ``train.py`` outputs ``paths``."""
    if len(paths) < 2:
        raise ValueError("average needs at least two train.py outputs")
    packs = [np.load(p) for p in paths]
    configs = [json.loads(str(p["config"])) for p in packs]
    keys = sorted(k for k in packs[0].files if k.startswith("weight:"))
    for path, pack, config in zip(paths[1:], packs[1:], configs[1:]):
        if config["model"] != configs[0]["model"]:
            raise ValueError(f"{path}: another model config than {paths[0]}")
        if sorted(k for k in pack.files if k.startswith("weight:")) != keys:
            raise ValueError(f"{path}: other weights than {paths[0]}")
        for k in keys:
            if pack[k].shape != packs[0][k].shape:
                raise ValueError(f"{path}: {k[len('weight:'):]} has shape {pack[k].shape}, "
                                 f"{paths[0]} {packs[0][k].shape}")
    arrays = {k: np.mean([p[k] for p in packs], axis=0).astype(packs[0][k].dtype) for k in keys}
    arrays["config"] = np.array(json.dumps(configs[0]))
    members = [json.loads(str(p["log"])) if "log" in p.files else {} for p in packs]
    for path, log in zip(paths, members):
        log["file"] = os.path.basename(path)
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
