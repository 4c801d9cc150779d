"""Runs a .tflite file on LiteRT's GPU accelerator over Mesa's lavapipe (a software
Vulkan GPU), for the export test and ``benchmarks/export.py``.

:func:`run_on_lavapipe` runs this file as a script in its own process (LiteRT's GPU
accelerator and TensorFlow crash when loaded in one process)::

    python litert_gpu_runner.py MODEL.tflite INPUTS.npz OUTPUT.npy {f32|f16}

which prints ``fully_accelerated=<bool>`` and exits 3 when the GPU accelerator does not
take the model: where it is unavailable, or where it rejects that model
(:func:`accelerator_available` tells which).
"""

import os
import subprocess
import sys

import numpy as np

LAVAPIPE = "/usr/share/vulkan/icd.d/lvp_icd.json"
UNAVAILABLE = 3


def run_on_lavapipe(data, feeds, precision, work):
    """Runs the .tflite bytes ``data`` on ``feeds`` (input name -> array) in ``precision``
    ("f32" or "f16"), using the folder ``work``; returns ``(returncode, stdout + stderr,
    output or None, fully accelerated)``."""
    model, inputs, output = (os.path.join(work, name) for name in ("gpu.tflite", "in.npz", "out.npy"))
    with open(model, "wb") as handle:
        handle.write(data)
    np.savez(inputs, **feeds)
    result = subprocess.run([sys.executable, os.path.abspath(__file__), model, inputs, output, precision],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "VK_ICD_FILENAMES": LAVAPIPE})
    returned = np.load(output) if result.returncode == 0 else None
    return (result.returncode, result.stdout + result.stderr, returned,
            "fully_accelerated=True" in result.stdout)


def accelerator_available(work):
    """Whether LiteRT's GPU accelerator runs here at all: a one-convolution model on it. A
    model that fails where this runs was rejected for what it is, not for the machine."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 1], tf.float32, name="image")])
    def blur(image):
        return {"restored": tf.nn.conv2d(image, tf.ones([3, 3, 1, 1]) / 9, 1, "SAME")}

    data = tf.lite.TFLiteConverter.from_concrete_functions([blur.get_concrete_function()]).convert()
    returncode, _, output, _ = run_on_lavapipe(data, {"image": np.ones((1, 8, 8, 1), np.float32)}, "f32", work)
    return returncode == 0 and np.allclose(output[0, 4, 4], 1.0)


def _main(model_path, inputs_path, output_path, precision):
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import GpuOptions, Options

    options = Options(
        hardware_accelerators=HardwareAccelerator.GPU,
        gpu_options=GpuOptions(enforce_f32=precision == "f32"),
    )
    try:
        model = CompiledModel.from_file(model_path, options=options)
    except Exception as error:  # no usable GPU / Vulkan device
        print(f"gpu_unavailable={error}")
        sys.exit(UNAVAILABLE)
    print(f"fully_accelerated={model.is_fully_accelerated()}", flush=True)
    signature = list(model.get_signature_list())[0]
    names = model.get_signature_list()[signature]["inputs"]
    feeds = np.load(inputs_path)
    inputs = model.create_input_buffers(0)
    for name, buffer in zip(names, inputs):
        buffer.write(np.ascontiguousarray(feeds[name], np.float32))
    outputs = model.create_output_buffers(0)
    model.run_by_index(0, inputs, outputs)
    size = int(np.prod(feeds["image"].shape))
    np.save(output_path, outputs[0].read(size, np.float32).reshape(feeds["image"].shape))


if __name__ == "__main__":
    _main(*sys.argv[1:5])
