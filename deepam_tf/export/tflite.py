"""TFLite export for phones: static input size, unrolled DCT-preconditioned PCG,
builtin ops only.

The TFLite GPU delegate has no WHILE op and no FFT, so the reconstruction runs a fixed
number of PCG iterations as straight-line ops (``ops.pcg.pcg_unrolled``, same step code
as the while loop) with the DCT preconditioner computed by convolutions with constant
kernels (``ops.pcg.dct_preconditioner(static=True)``). The export refuses a model that
still contains WHILE, SHAPE, BROADCAST_TO or Flex (SELECT_TF_OPS) ops.
"""

import contextlib
import logging
import os

import tensorflow as tf

from deepam_tf import colour

FORBIDDEN_OPS = ("WHILE", "SHAPE", "BROADCAST_TO", "FLEX", "CUSTOM", "VAR_HANDLE", "READ_VARIABLE")
DEFAULT_SIZE = (256, 256)
PRECONDITIONER = "dct"  # by convolutions in the static form; "jacobi" only for comparisons
DEFAULT_ITERATIONS = 8  # chosen by benchmarks/unrolled_iterations.py (README)
# The DCT kernels are n² constants per side (20.6 MB of file at 1024²); larger images are
# better run in tiles of an export this size than as one ever larger file.
MAX_SIDE = 2048


def check_export_options(size, iterations, model=None, rgb=False):
    """Raises ValueError naming a bad static size (two integers in [2, MAX_SIDE]), a bad
    iteration count (an integer >= 1), or an ``rgb`` export of a model that is not a
    noise-level-conditioned grayscale denoiser."""
    if rgb and (model.channels, model.guidance_channels, model.noise_level_input) != (1, 0, True):
        raise ValueError("an RGB export needs a noise-level-conditioned grayscale denoiser, got "
                         f"channels={model.channels}, guidance_channels={model.guidance_channels}, "
                         f"noise_level_input={model.noise_level_input}")
    sides = tuple(size) if isinstance(size, (tuple, list)) else ()
    if len(sides) != 2 or not all(
            isinstance(n, int) and not isinstance(n, bool) and 2 <= n <= MAX_SIDE for n in sides):
        raise ValueError(f"size must be two integers (H, W) in [2, {MAX_SIDE}], got {size!r}; "
                         f"the DCT constants grow as the square of each side")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")


@contextlib.contextmanager
def _without_log_message(logger_name, text):
    """Drops the records of one Python logger whose message contains ``text``."""
    logger = logging.getLogger(logger_name)

    def keep(record):
        return text not in record.getMessage()

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def static_copy(model, iterations=DEFAULT_ITERATIONS, preconditioner=PRECONDITIONER):
    """A copy of a DeepAM with an unrolled fixed-iteration reconstruction, same weights."""
    from deepam_tf.models import DeepAM

    config = model.get_config()
    config.update(unrolled=True, iterations=iterations, preconditioner=preconditioner, tolerance=0.0)
    clone = DeepAM.from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def input_specs(model, size=DEFAULT_SIZE, rgb=False):
    """``{name: TensorSpec}`` of the static TFLite inputs, in the model's input order
    (``rgb``: an RGB image for a grayscale denoiser, see :func:`convert`)."""
    h, w = size
    channels = 3 if rgb else model.channels
    specs = {"image": tf.TensorSpec([1, h, w, channels], tf.float32, name="image")}
    if model.guidance_channels:
        specs["guidance"] = tf.TensorSpec([1, h, w, model.guidance_channels], tf.float32, name="guidance")
    if model.noise_level_input:
        specs["noise_level"] = tf.TensorSpec([1, 1], tf.float32, name="noise_level")
    return specs


def operators(tflite_bytes):
    """The set of op names in a TFLite flatbuffer."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_bytes)
    return {op["op_name"] for op in interpreter._get_ops_details()}


def _opponent_forward(clone):
    """RGB ``[1, H, W, 3]`` and σ/255 ``[1, 1]`` -> restored RGB: the grayscale model on
    each opponent channel (:mod:`deepam_tf.colour`) at its noise level. The transforms
    are 1×1 convolutions and the channels run one after another (SPLIT and
    CONCATENATION on the channel axis): ops the GPU delegate runs."""
    forward_kernel = tf.constant(colour.OPPONENT.T[None, None], tf.float32)
    inverse_kernel = tf.constant(colour.INVERSE.T[None, None], tf.float32)
    offset = tf.constant(colour.OFFSET, tf.float32)

    def forward(image, noise_level):
        opponent = tf.nn.conv2d(image, forward_kernel, 1, "VALID") + offset
        restored = [
            clone({"image": channel, "noise_level": noise_level * float(scale)}, training=False)
            for channel, scale in zip(tf.split(opponent, 3, axis=-1), colour.NOISE_SCALE)
        ]
        return {"restored": tf.nn.conv2d(tf.concat(restored, -1) - offset, inverse_kernel, 1, "VALID")}

    return forward


def convert(model, size=DEFAULT_SIZE, iterations=DEFAULT_ITERATIONS, float16=False,
            preconditioner=PRECONDITIONER, rgb=False):
    """TFLite flatbuffer bytes of ``model`` at the static ``size`` (H, W). ``rgb``
    (noise-level-conditioned grayscale denoisers): the model takes an RGB image and
    denoises its opponent channels, as ``deepam_tf.denoise`` does."""
    check_export_options(size, iterations, model, rgb)
    clone = static_copy(model, iterations, preconditioner)
    specs = input_specs(clone, size, rgb)
    names = list(specs)

    def forward(*args):
        inputs = dict(zip(names, args))
        return {"restored": clone(inputs if len(inputs) > 1 else inputs["image"], training=False)}

    if rgb:
        forward = _opponent_forward(clone)

    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    function = tf.function(forward, autograph=False).get_concrete_function(*specs.values())
    frozen = convert_variables_to_constants_v2(function)  # weights as constants, no VAR_HANDLE
    # The frozen function has no variables left to track, so the converter's advice to
    # pass trackable_obj does not apply; keep it off the user's terminal.
    with _without_log_message("absl", "trackable_obj"):
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    data = converter.convert()
    bad = sorted(op for op in operators(data) if any(op.startswith(f) for f in FORBIDDEN_OPS))
    if bad:
        raise ValueError(f"the TFLite model has ops the GPU delegate cannot run: {bad}")
    return data


def export_tflite(model, path, size=DEFAULT_SIZE, iterations=DEFAULT_ITERATIONS, float16=False,
                  overwrite=False, rgb=False):
    """Writes the TFLite model to ``path`` (atomically); returns the path."""
    check_export_options(size, iterations, model, rgb)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    data = convert(model, size, iterations, float16, rgb=rgb)
    tmp = path + ".partial"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
    return path
