import os
import subprocess
import sys

import numpy as np
import pytest
from litert_gpu_runner import LAVAPIPE, UNAVAILABLE, accelerator_available, run_on_lavapipe

from deepam_tf import DeepAM
from deepam_tf.export import tflite


def _run(data, feeds):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        name = next(n for n in feeds if n in detail["name"])
        interpreter.set_tensor(detail["index"], feeds[name])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


STATIC_DCT_IN_A_GRAPH = """
import numpy as np, tensorflow as tf
from deepam_tf.ops import pcg
rng = np.random.default_rng(0)
gamma = tf.constant(rng.uniform(0.01, 1, (1, 256, 240, 1)), tf.float32)
r = tf.constant(rng.normal(size=(1, 256, 240, 1)), tf.float32)
static = tf.function(lambda g, x: pcg.dct_preconditioner(g, static=True)(x))(gamma, r)
by_fft = pcg.dct_preconditioner(gamma)(r)
print("max difference", float(tf.reduce_max(tf.abs(static - by_fft))))
"""


def test_static_dct_runs_in_a_traced_graph_at_export_sizes():
    # TF's oneDNN convolution aborted the whole process on the DCT's tall constant kernels
    # (>= ~224 rows) on CPUs without AVX2; a subprocess keeps an abort from ending pytest.
    done = subprocess.run([sys.executable, "-c", STATIC_DCT_IN_A_GRAPH], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.split()[-1]) < 1e-4


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(0)
    return DeepAM(stages=2, features=8, depth=4, gamma_layer=3, fusion_layer=2,
                  noise_level_input=True, residual_gradients=False)


def test_tflite_matches_keras_and_has_builtin_gpu_ops_only(model):
    data = tflite.convert(model, (40, 56), iterations=12)
    ops = tflite.operators(data)
    assert "CONV_2D" in ops
    assert not {op for op in ops if op.startswith(tflite.FORBIDDEN_OPS)}
    rng = np.random.default_rng(0)
    feeds = {"image": rng.random((1, 40, 56, 1), np.float32),
             "noise_level": np.full((1, 1), 0.1, np.float32)}
    got = _run(data, feeds)
    want = np.asarray(tflite.static_copy(model, 12)(feeds))
    assert np.abs(got - want).max() <= 1e-4


def test_rgb_export_denoises_the_opponent_channels_as_denoise_does(model):
    from deepam_tf import colour, denoise, DeepAM

    data = tflite.convert(model, (24, 32), iterations=8, rgb=True)
    assert not {op for op in tflite.operators(data) if op.startswith(tflite.FORBIDDEN_OPS)}
    rgb = np.random.default_rng(3).random((1, 24, 32, 3)).astype(np.float32)
    got = _run(data, {"image": rgb, "noise_level": np.full((1, 1), 30 / 255, np.float32)})
    clone = tflite.static_copy(model, 8)
    opponent = colour.to_opponent(rgb[0])
    channels = [np.asarray(clone({"image": opponent[None, ..., c:c + 1],
                                  "noise_level": np.full((1, 1), 30 * s / 255, np.float32)}))[0, ..., 0]
                for c, s in enumerate(colour.NOISE_SCALE)]
    want = colour.from_opponent(np.stack(channels, -1))
    assert got.shape == (1, 24, 32, 3) and np.abs(got[0] - want).max() <= 1e-4
    # ... which is deepam_tf.denoise's colour path (that clips to [0, 1]) up to the solver:
    # 8 unrolled steps against the while loop to 1e-4.
    assert np.abs(np.clip(got[0], 0, 1) - denoise(rgb[0], 30, model=model, tile_size=None)).max() <= 2e-2
    with pytest.raises(ValueError, match="an RGB export needs a noise-level-conditioned grayscale"):
        tflite.convert(DeepAM(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2), (8, 8), 2, rgb=True)


def test_export_command_writes_an_rgb_tflite_and_refuses_it_for_a_guided_model(model, tmp_path, capsys):
    from deepam_tf import DeepAM, cli

    model.save(tmp_path / "m.keras")
    args = ["export", str(tmp_path / "m.keras"), "--format", "tflite", "--size", "16", "16",
            "--iterations", "2", "--rgb", "-o", str(tmp_path / "out")]
    assert cli.main(args) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m_16x16_rgb.tflite"]
    DeepAM(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2, guidance_channels=3).save(
        tmp_path / "guided.keras")
    args[1], args[-1] = str(tmp_path / "guided.keras"), str(tmp_path / "out2")
    assert cli.main(args) == 1 and "an RGB export needs" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


def test_few_unrolled_dct_iterations_reach_the_converged_keras_output(model):
    # The export's solve (DCT by convolutions, no loop) against the model's own (DCT by
    # FFT, while loop to 1e-4); Jacobi with as many iterations is far from it.
    data = tflite.convert(model, (40, 56), iterations=8)
    rng = np.random.default_rng(2)
    feeds = {"image": rng.random((1, 40, 56, 1), np.float32),
             "noise_level": np.full((1, 1), 0.1, np.float32)}
    converged = np.asarray(model(feeds))
    assert np.abs(_run(data, feeds) - converged).max() <= 2e-3
    assert np.abs(np.asarray(tflite.static_copy(model, 8, "jacobi")(feeds)) - converged).max() > 2e-2


def test_unrolled_copy_keeps_weights_and_changes_only_the_solver(model):
    clone = tflite.static_copy(model, 7)
    assert clone.unrolled and clone.iterations == 7 and clone.preconditioner == "dct"
    for a, b in zip(model.get_weights(), clone.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_guided_model_converts():
    guided = DeepAM(stages=1, features=4, depth=4, gamma_layer=3, fusion_layer=2, guidance_channels=3)
    data = tflite.convert(guided, (16, 16), iterations=3)
    feeds = {"image": np.ones((1, 16, 16, 1), np.float32), "guidance": np.ones((1, 16, 16, 3), np.float32)}
    assert _run(data, feeds).shape == (1, 16, 16, 1)


def test_export_refuses_to_overwrite(model, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        tflite.export_tflite(model, str(path), (8, 8), 2)
    assert path.read_bytes() == b"keep"


@pytest.mark.parametrize("size, iterations, match", [
    ((0, 64), 8, r"size must be two integers \(H, W\) in \[2, 2048\]"),
    ((64,), 8, "size must be two integers"),
    ((4096, 64), 8, "grow as the square"),
    ((64.0, 64), 8, "size must be two integers"),
    ((64, 64), 0, "iterations must be an integer >= 1"),
])
def test_a_bad_export_size_or_iteration_count_is_refused_before_any_file(tmp_path, size, iterations, match):
    from deepam_tf import cli

    with pytest.raises(ValueError, match=match):
        tflite.convert(None, size, iterations)
    args = ["export", str(tmp_path / "none.keras"), "--format", "tflite", "-o", str(tmp_path / "out")]
    if len(size) == 2 and all(isinstance(n, int) for n in size):
        model = tmp_path / "m.keras"
        from deepam_tf import DeepAM

        DeepAM(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2).save(model)
        args[1] = str(model)
        command = args + ["--size", *map(str, size), "--iterations", str(iterations)]
        if min(size) < 2:  # argparse refuses it (exit 2)
            with pytest.raises(SystemExit):
                cli.main(command)
        else:
            assert cli.main(command) == 1
        assert not (tmp_path / "out").exists()


@pytest.mark.skipif(
    not os.path.exists(LAVAPIPE),
    reason="NO GPU-DELEGATE CHECK: Mesa's lavapipe Vulkan driver is missing "
    "(apt-get install -t bookworm-backports mesa-vulkan-drivers, as .ci/run does)",
)
# Bounds relative to the output's magnitude: fp32 must match; fp16 is measured (about
# 3e-3 to 2e-2 absolute on outputs of magnitude ~1-3 here) and bounded loosely.
# rgb: the export that takes RGB and denoises its opponent channels.
@pytest.mark.parametrize("precision, bound, rgb", [("f32", 1e-5, False), ("f16", 2e-2, False),
                                                   ("f32", 1e-5, True)])
def test_gpu_accelerator_runs_every_op(model, tmp_path, precision, bound, rgb):
    data = tflite.convert(model, (64, 48), iterations=10, rgb=rgb)
    rng = np.random.default_rng(1)
    feeds = {"image": rng.random((1, 64, 48, 3 if rgb else 1), np.float32),
             "noise_level": np.full((1, 1), 0.1, np.float32)}
    returncode, printed, output, fully_accelerated = run_on_lavapipe(data, feeds, precision, str(tmp_path))
    if returncode == UNAVAILABLE:
        assert not accelerator_available(str(tmp_path)), f"the GPU accelerator rejects the export: {printed[-2000:]}"
        pytest.skip(f"NO GPU-DELEGATE CHECK: LiteRT GPU accelerator unavailable: {printed[-300:]}")
    assert returncode == 0, printed[-2000:]
    assert fully_accelerated
    cpu = _run(data, feeds)
    error = np.abs(output - cpu).max() / max(1.0, np.abs(cpu).max())
    print(f"GPU ({precision}) vs CPU TFLite max error relative to max|output|: {error:.2e}")
    assert error <= bound


def test_only_the_dct_kernels_grow_with_the_export_size(model):
    # Doubling H and W adds the forward and inverse DCT kernels' growth (H² + W² floats
    # each) and nothing of H x W: the noise-level map and the preconditioner's
    # eigenvalues are built in the graph, not stored (each would add 92 kB here).
    small, large = (len(tflite.convert(model, size, 4)) for size in ((96, 80), (192, 160)))
    kernels = 2 * 4 * ((192**2 + 160**2) - (96**2 + 80**2))
    one_map = 4 * (192 * 160 - 96 * 80)
    assert large - small <= kernels + one_map // 4, (large - small, kernels)
    # The Jacobi form has no kernels: its neighbour counts are a column plus a row too.
    small, large = (len(tflite.convert(model, size, 4, preconditioner="jacobi"))
                    for size in ((96, 80), (192, 160)))
    assert large - small <= one_map // 4, large - small


def test_conversion_keeps_the_converters_trackable_obj_advice_off_the_terminal(model, caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        tflite.convert(model, (8, 8), 2)
    assert not [r for r in caplog.records if "trackable_obj" in r.getMessage()]
    assert not logging.getLogger("absl").filters  # the filter is removed afterwards
