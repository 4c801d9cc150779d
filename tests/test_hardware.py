from deepam_tf import hardware

X86 = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\nbugs\t\t: none\n"
X86_OLD = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\nCPU implementer\t: 0x41\n"


def test_cpu_flags_read_x86_and_arm_cpuinfo():
    assert "avx512_bf16" in hardware.cpu_flags(X86)
    assert "bf16" in hardware.cpu_flags(ARM)
    assert hardware.cpu_flags("") == set()
    for text, native in ((X86, True), (X86_OLD, False), (ARM, True)):
        assert bool(hardware.cpu_flags(text) & hardware.BFLOAT16_FLAGS) is native
