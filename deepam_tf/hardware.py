"""What this machine computes natively, for choices that depend on it."""

# /proc/cpuinfo feature flags of native bfloat16 arithmetic: x86 (AVX512-BF16, AMX) and
# Arm (the BF16 extension, e.g. AWS Graviton3).
BFLOAT16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}


def cpu_flags(cpuinfo=None):
    """The CPU's feature flags from ``/proc/cpuinfo`` (Linux; the ``flags`` line on x86,
    ``Features`` on Arm), or an empty set. ``cpuinfo``: that file's text, for tests."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as handle:
                cpuinfo = handle.read()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def native_bfloat16():
    """Whether TensorFlow here runs bfloat16 convolutions in hardware: a GPU of compute
    capability 8.0 or newer, or a CPU with bfloat16 instructions (:data:`BFLOAT16_FLAGS`).
    Elsewhere bfloat16 is emulated and slower than float32."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and capability >= (8, 0):
            return True
    return bool(cpu_flags() & BFLOAT16_FLAGS)
