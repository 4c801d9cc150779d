"""Packs a training config's data and initial weights into one ``.npz`` for ``train.py``.

Runs where ``deepam_tf`` (TensorFlow) is installed::

    python jax_train/pack.py configs/depth_sr_x4.json gpu_pack/depth.npz
    python jax_train/pack.py configs/fast_cpu.json gpu_pack/denoise.npz --preset denoise_blind

The images are stored as uint8 (all training sets here are 8-bit); the initial weights
are a fresh Keras initialisation of the config's model (``--seed``) or a preset's
weights, keyed by Keras weight path. The pack also holds ``keras_map``, where each weight
of this model lies in a ``.keras`` file, so that ``train.py --init`` can start from any
preset or saved model of the same architecture (e.g. the ones in the tree) on a machine
without TensorFlow, with no second pack to carry.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import degrade  # noqa: E402
from convert import KERAS_WEIGHTS, REPO  # noqa: E402


def _as_uint8(array, what):
    scaled = np.round(array * 255.0)
    if np.abs(scaled - array * 255.0).max() > 1e-3 or scaled.min() < 0 or scaled.max() > 255:
        raise ValueError(f"{what} is not 8-bit data; pack.py stores uint8 only")
    return scaled.astype(np.uint8)


def _rescaled_copies(arrays, samples, factors):
    """``arrays`` with the images replaced by one copy of every sample per factor of the
    config's data ``scales`` (:func:`deepam_tf.data.rescale`, rounded to 8 bits as MATLAB's
    ``imresize`` of a uint8 image; a factor of 1 is the image itself). The sampler draws
    images uniformly, so it draws the factors uniformly, as ``deepam train`` does."""
    import tensorflow as tf

    from deepam_tf import data

    out = {k: v for k, v in arrays.items() if not k.startswith(("image_", "guidance_"))}
    for copy, factor in enumerate(factors):
        for i, sample in enumerate(samples):
            index = copy * len(samples) + i
            for key, image in sample.items():
                if factor == 1:
                    out[f"{key}_{index}"] = arrays[f"{key}_{i}"]
                else:
                    resized = data.rescale(tf.constant(image), factor).numpy()
                    out[f"{key}_{index}"] = np.round(resized * 255.0).astype(np.uint8)
    return out


def keras_map(model):
    """``{dataset path in a .keras file's weights: Keras weight path}`` for ``model``'s
    architecture, read off a saved copy whose every element is a distinct number."""
    import tempfile
    import zipfile

    import h5py
    import keras

    clone = model.__class__.from_config(model.get_config())
    clone.build_from_config(model.get_build_config())
    start, by_first = 1.0, {}
    for weight in clone.weights:
        size = int(np.prod(weight.shape))
        weight.assign(np.arange(start, start + size, dtype=np.float32).reshape(weight.shape))
        by_first[start] = weight
        start += size
    if start > 2**24:  # float32 holds every integer up to 2**24
        raise ValueError(f"{start:.0f} weight elements: too many to tell apart in float32")
    found = {}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        clone.save(path)
        with zipfile.ZipFile(path) as archive, archive.open(KERAS_WEIGHTS) as member:
            with h5py.File(member, "r") as weights:
                def visit(name, item):
                    if isinstance(item, h5py.Dataset):
                        value = item[()]
                        weight = by_first[float(value.flat[0])]
                        np.testing.assert_array_equal(value, keras.ops.convert_to_numpy(weight))
                        found[name] = weight.path
                weights.visititems(visit)
    if sorted(found.values()) != sorted(w.path for w in clone.weights):
        raise AssertionError("a .keras file does not hold each weight once")
    return found


def weight_arrays(model, path=None):
    """The pack's entries for ``model``'s starting weights: ``weight:PATH`` arrays and the
    ``keras_map``. When ``path``, the ``.keras`` file ``model`` was loaded from, is a
    shipped preset (tracked in the repository, which travels with the pack), the pack
    names it (``weights_file``, relative to the repository) and holds zeros of each
    weight's shape, which compress to nothing: 3.6 MB less for a denoiser."""
    import keras

    from deepam_tf.models.presets import PRESET_DIR

    arrays = {"keras_map": np.array(json.dumps(keras_map(model)))}
    inside = (path is not None and os.path.dirname(os.path.abspath(path)) == os.path.abspath(PRESET_DIR)
              and not os.path.relpath(PRESET_DIR, REPO).startswith(".."))  # an editable install
    for weight in model.weights:
        value = keras.ops.convert_to_numpy(weight)
        arrays["weight:" + weight.path] = np.zeros_like(value) if inside else value
    if inside:
        arrays["weights_file"] = np.array(os.path.relpath(os.path.abspath(path), REPO))
    return arrays


def pack(config_path, output, preset=None, seed=0, data_root=None):
    import keras
    import tensorflow as tf

    from deepam_tf import data, train
    from deepam_tf.models import presets

    config = train.load_config(config_path)
    arrays = {"config": np.array(json.dumps(config))}
    samples = list(train.train_samples(config, data_root).as_numpy_iterator())
    scale = config["data"].get("scale")
    for i, sample in enumerate(samples):
        arrays[f"image_{i}"] = _as_uint8(sample["image"], f"training image {i}")
        if "guidance" in sample:
            arrays[f"guidance_{i}"] = _as_uint8(sample["guidance"], f"guidance image {i}")
        if scale:
            expected = data.DepthDownsampling(scale).prepare({"image": tf.constant(sample["image"])})
            got = degrade.depth_input(arrays[f"image_{i}"] / np.float32(255), scale)
            gap = np.abs(expected["degraded"].numpy() - got).max()
            if gap > 1e-5:
                raise AssertionError(f"numpy depth degradation differs from deepam_tf's by {gap}")
    if "scales" in config["data"]:
        arrays = _rescaled_copies(arrays, samples, data.check_scales(config["data"]["scales"]))
    if preset:
        model, path = presets.load_preset(preset), presets.preset_file(preset)
    else:
        keras.utils.set_random_seed(seed)
        model, path = train.build_model(config), None
    arrays.update(weight_arrays(model, path))
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    np.savez_compressed(output, **arrays)
    print(f"{output}: {sum(k.startswith('image_') for k in arrays)} samples, {len(model.weights)} weights, "
          f"{os.path.getsize(output) / 1e6:.1f} MB")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("output")
    parser.add_argument("--preset", help="start from this preset's weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    pack(args.config, args.output, args.preset, args.seed, args.data_dir)


if __name__ == "__main__":
    main()
