"""What a TF-Serving client gets: the mean PSNR of SavedModels (their ``serving_default``
signature) on a test set under the evaluation protocol (``deepam_tf.evaluation.PROTOCOL``),
beside ``deepam_tf.denoise`` with its default ``model="auto"`` on the same noisy images.

    deepam export denoise_blind -o OLD        # one preset alone
    python benchmarks/served.py OLD/denoise_blind/1 exported/saved_model/denoise/1 \\
        --sets set12 --sigmas 25 50 60 75 90

Needs the benchmark data (``--data-dir`` or ``DEEPAM_DATA``, default ``../shared/data``).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import markdown_table  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("saved_models", nargs="+", help="SavedModel folders (NAME/VERSION)")
    parser.add_argument("--sets", nargs="+", default=["set12"], help="folders under DATA/denoise")
    parser.add_argument("--sigmas", nargs="+", type=float, default=[25.0, 50.0, 75.0, 90.0])
    parser.add_argument("--data-dir", help="benchmark data (default: DEEPAM_DATA or ../shared/data)")
    parser.add_argument("--limit", type=int, help="first N images of each set")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (the protocol's: 0)")
    args = parser.parse_args()
    for path in args.saved_models:
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            parser.error(f"{path} holds no saved_model.pb (give the NAME/VERSION folder)")

    import tensorflow as tf

    from deepam_tf import data, denoise, evaluation

    def served(signature):
        def restore(noisy, sigma):
            image = tf.constant(noisy[None, :, :, None], tf.float32)
            return signature(image=image, sigma=tf.constant([sigma], tf.float32))["restored"].numpy()[0, ..., 0]
        return restore

    restorers = [(path, served(tf.saved_model.load(path, tags=["serve"]).signatures["serving_default"]))
                 for path in args.saved_models]
    restorers.append(('deepam_tf.denoise (model="auto")', lambda noisy, sigma: denoise(noisy, sigma)))
    root = data.data_dir(args.data_dir)
    rows = []
    for name in args.sets:
        folder = os.path.join(root, "denoise", name)
        for sigma in args.sigmas:
            means = [evaluation.evaluate_restorer(restore, folder, sigma, seed=args.seed,
                                                  limit=args.limit)[-1] for _, restore in restorers]
            rows.append([name, f"{sigma:g}", f"{means[0]['noisy_psnr']:.2f}",
                         *(f"{mean['psnr']:.3f}" for mean in means)])
            print(" | ".join(rows[-1]), flush=True)
    print()
    print(markdown_table(["set", "σ", "noisy", *(label for label, _ in restorers)], rows))


if __name__ == "__main__":
    main()
