"""Averages the weights of ``train.py`` outputs that continued one model (a "model soup",
Wortsman et al., ICML 2022) into one output that ``convert.py`` reads.

    python jax_train/average.py out/soup.npz out/run_a.npz out/run_b.npz ...
    python jax_train/average.py out/further.npz START.npz out/run.npz --coefficients -0.5 1.5

``--coefficients`` weighs the inputs instead of the plain mean: an affine combination
(the coefficients sum to 1), e.g. a fine-tune's start (a ``pack.py`` pack holds its
weights) and the fine-tune, to go 1.5 times as far along the fine-tune's direction.

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

from convert import check_same_weights, describe_average, weights_of


def average(paths, coefficients=None):
    """``{npz key: array}`` of the weight-space mean of the ``train.py`` outputs ``paths``,
    or their combination with ``coefficients`` (one per path, summing to 1)."""
    if len(paths) < 2:
        raise ValueError("average needs at least two train.py outputs")
    if coefficients is None:
        coefficients = [1.0 / len(paths)] * len(paths)
    if len(coefficients) != len(paths):
        raise ValueError(f"{len(coefficients)} coefficients for {len(paths)} inputs")
    if not np.isclose(sum(coefficients), 1.0):
        raise ValueError(f"the coefficients sum to {sum(coefficients):g}, not 1")
    runs = [weights_of(p) for p in paths]
    config, first, _ = runs[0]
    for path, (other_config, weights, _) in zip(paths[1:], runs[1:]):
        if other_config["model"] != config["model"]:
            raise ValueError(f"{path}: another model config than {paths[0]}")
        check_same_weights(weights, first, path, paths[0])
    arrays = {"weight:" + k: sum(c * w[k].astype(np.float64) for c, (_, w, _) in zip(coefficients, runs))
              .astype(v.dtype) for k, v in first.items()}
    negative = [k for k in first if k.endswith("moving_variance") and np.any(arrays["weight:" + k] < 0)]
    if negative:
        raise ValueError(f"the combination gives a negative batch-norm variance ({negative[0]}); "
                         "combine runs whose statistics agree, e.g. ones trained frozen")
    arrays["config"] = np.array(json.dumps(config))
    members = [dict(log or {}, file=os.path.basename(p), coefficient=c)
               for p, c, (_, _, log) in zip(paths, coefficients, runs)]
    arrays["log"] = np.array(json.dumps({"average_of": members}))
    return arrays


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--coefficients", type=float, nargs="+",
                        help="one weight per input, summing to 1 (default: the mean)")
    args = parser.parse_args(argv)
    if os.path.exists(args.output):
        raise FileExistsError(f"{args.output} exists; not overwritten")
    arrays = average(args.inputs, args.coefficients)
    np.savez(args.output, **arrays)
    members = json.loads(str(arrays["log"]))["average_of"]
    print(f"{args.output}: {describe_average([m['coefficient'] for m in members])}, "
          f"{sum(k.startswith('weight:') for k in arrays)} weights")


if __name__ == "__main__":
    main()
