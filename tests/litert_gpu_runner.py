"""Runs a .tflite file on LiteRT's GPU accelerator (test helper, run in its own process:
LiteRT's GPU accelerator and TensorFlow crash when loaded in one process).

    python litert_gpu_runner.py MODEL.tflite INPUTS.npz OUTPUT.npy {f32|f16}

Prints ``fully_accelerated=<bool>``; exits 3 when the GPU accelerator is unavailable.
"""

import sys

import numpy as np
from ai_edge_litert.compiled_model import CompiledModel
from ai_edge_litert.hardware_accelerator import HardwareAccelerator
from ai_edge_litert.options import GpuOptions, Options

model_path, inputs_path, output_path, precision = sys.argv[1:5]
options = Options(
    hardware_accelerators=HardwareAccelerator.GPU,
    gpu_options=GpuOptions(enforce_f32=precision == "f32"),
)
try:
    model = CompiledModel.from_file(model_path, options=options)
except Exception as error:  # no usable GPU / Vulkan device
    print(f"gpu_unavailable={error}")
    sys.exit(3)
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
