"""What this machine computes natively, for choices that depend on it."""


def cpu_flags():
    """The x86 CPU's feature flags from ``/proc/cpuinfo`` (Linux), or an empty set."""
    try:
        with open("/proc/cpuinfo") as handle:
            line = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return set()
    return set(line.partition(":")[2].split())


def native_bfloat16():
    """Whether TensorFlow here runs bfloat16 convolutions in hardware: a GPU of compute
    capability 8.0 or newer, or an x86 CPU with AVX512-BF16 or AMX-BF16. Elsewhere
    bfloat16 is emulated and slower than float32."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and capability >= (8, 0):
            return True
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})
