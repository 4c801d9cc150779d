import os
import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from deepam_tf import cli, restore


def test_demo_writes_its_panel_and_prints_only_its_report(tmp_path):
    # The README's first command as a user runs it: a fresh process, TensorFlow's native
    # log at its default level, nothing on stderr.
    env = {k: v for k, v in os.environ.items() if k not in ("DEEPAM_NATIVE_LOG", "TF_CPP_MIN_LOG_LEVEL")}
    out = tmp_path / "demo.png"
    done = subprocess.run([sys.executable, "-m", "deepam_tf.cli", "denoise", "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0] == "camera, sigma=25, DeepAM preset denoise_sigma25"  # the σ=25 specialist
    panel = iio.imread(out)
    assert panel.shape == (512, 1536) and panel.dtype == np.uint8
    noisy, restored = (line.split("PSNR")[1].split()[0] for line in lines[1:3])
    assert float(restored) > float(noisy) + 6
    # The README's first paragraph quotes the demo's PSNRs; they must be today's.
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    quoted = re.search(r"\(([\d.]+) dB\s+noisy, ([\d.]+) dB restored\)", readme)
    assert quoted, "README no longer quotes the demo's PSNRs"
    assert quoted.groups() == (noisy, restored)


def _no_work(*args, **kwargs):
    raise AssertionError("denoised before refusing")


def test_demo_refuses_to_overwrite_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(restore, "denoise", _no_work)
    out = tmp_path / "demo.png"
    out.write_bytes(b"the user's file")
    assert cli.main(["denoise", "-o", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"the user's file"
    assert not list(tmp_path.glob(".*partial"))


def test_folder_run_goes_past_bad_files_and_never_overwrites_inputs(tmp_path, capsys):
    import skimage.data

    from deepam_tf import DeepAM

    model = tmp_path / "m.keras"
    DeepAM(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2, noise_level_input=True).save(model)
    inputs = tmp_path / "in"
    inputs.mkdir()
    iio.imwrite(inputs / "a.png", skimage.data.camera()[:32, :40])
    iio.imwrite(inputs / "b.png", skimage.data.camera()[:20, :20].astype(np.uint16) * 257)
    (inputs / "text.png").write_text("not an image")
    (inputs / "empty.png").write_bytes(b"")
    originals = {p.name: p.read_bytes() for p in inputs.iterdir()}
    code = cli.main(["denoise", str(inputs), "-o", str(tmp_path / "out"), "--model", str(model)])
    assert code == 1
    err = capsys.readouterr().err
    assert "text.png: not a readable image" in err and "empty.png: empty file" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    assert iio.imread(tmp_path / "out" / "b.png").dtype == np.uint16
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == originals
    # Writing onto an input is refused, even with --overwrite.
    code = cli.main(["denoise", str(inputs / "a.png"), "-o", str(inputs / "a.png"), "--model", str(model),
                     "--overwrite"])
    assert code == 1 and (inputs / "a.png").read_bytes() == originals["a.png"]
    # One file into an existing folder lands there under its own name.
    code = cli.main(["denoise", str(inputs / "a.png"), "-o", str(tmp_path / "out"), "--model", str(model),
                     "--overwrite"])
    assert code == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_upsample_depth_and_restore_nir_commands(tmp_path, capsys):
    import imageio.v3 as iio
    import numpy as np
    import skimage.data

    from deepam_tf import DeepAM

    small = dict(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2)
    DeepAM(guidance_channels=3, **small).save(tmp_path / "depth.keras")
    DeepAM(channels=3, guidance_channels=1, noise_level_input=True, **small).save(tmp_path / "nir.keras")
    rgb = skimage.data.astronaut()[:64, :48]
    iio.imwrite(tmp_path / "rgb.png", rgb)
    iio.imwrite(tmp_path / "depth.png", rgb[::4, ::4, 0])
    iio.imwrite(tmp_path / "nir.png", rgb[..., 0])
    out = tmp_path / "high.png"
    args = ["upsample-depth", "--depth", str(tmp_path / "depth.png"), "--rgb", str(tmp_path / "rgb.png"),
            "--scale", "4", "--model", str(tmp_path / "depth.keras"), "-o", str(out)]
    assert cli.main(args) == 0
    assert iio.imread(out).shape == (64, 48)
    x8 = [a if a != "4" else "8" for a in args[:-1]] + [str(tmp_path / "x8.png")]
    assert cli.main(x8) == 1
    assert "rgb.png is 64x48 but " in (err := capsys.readouterr().err) and "depth.png (16x12) times 8" in err
    # Depth (and NIR) files saved as RGB with equal channels are read as gray; a colour
    # guidance is required.
    iio.imwrite(tmp_path / "depth3.png", np.repeat(rgb[::4, ::4, :1], 3, axis=-1))
    as_rgb = [str(tmp_path / "depth3.png") if a.endswith("depth.png") else a for a in args[:-1]]
    assert cli.main(as_rgb + [str(tmp_path / "high3.png")]) == 0
    assert np.array_equal(iio.imread(tmp_path / "high3.png"), iio.imread(out))
    gray_guide = [str(tmp_path / "nir.png") if a.endswith("rgb.png") else a for a in args[:-1]]
    assert cli.main(gray_guide + [str(tmp_path / "g.png")]) == 1
    assert "nir.png: the guidance must be a colour (RGB) image" in capsys.readouterr().err
    nir_out = tmp_path / "restored.png"
    nir_args = ["restore-nir", "--rgb", str(tmp_path / "rgb.png"), "--nir", str(tmp_path / "nir.png"),
                "--sigma", "25", "--model", str(tmp_path / "nir.keras"), "-o", str(nir_out)]
    assert cli.main(nir_args) == 0
    assert iio.imread(nir_out).shape == (64, 48, 3)
    assert cli.main(nir_args) == 1  # refuses to overwrite
    assert "exists" in capsys.readouterr().err
    wrong = ["restore-nir", "--rgb", str(tmp_path / "rgb.png"), "--nir", str(tmp_path / "rgb.png"),
             "--sigma", "25", "--model", str(tmp_path / "nir.keras"), "-o", str(tmp_path / "x.png")]
    assert cli.main(wrong) == 1
    assert "rgb.png: the NIR image must be single-channel, got 3 channels that differ" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    iio.imwrite(tmp_path / "small_nir.png", np.zeros((32, 48), np.uint8))
    unaligned = ["restore-nir", "--rgb", str(tmp_path / "rgb.png"), "--nir", str(tmp_path / "small_nir.png"),
                 "--model", str(tmp_path / "nir.keras"), "-o", str(tmp_path / "x.png")]
    assert cli.main(unaligned) == 1
    out, err = capsys.readouterr()
    assert "rgb.png is 64x48 but" in err and "small_nir.png is 32x48" in err
    assert "estimated sigma" not in out and not (tmp_path / "x.png").exists()
    iio.imwrite(tmp_path / "gray_alpha.png", np.dstack([rgb[..., 0], np.full(rgb.shape[:2], 9, np.uint8)]))
    for gray in ("nir.png", "gray_alpha.png"):
        swapped = [str(tmp_path / gray) if a.endswith("rgb.png") else a for a in nir_args[:-1]]
        assert cli.main(swapped + [str(tmp_path / "x.png")]) == 1
        assert f"{gray}: the image to restore must be a colour (RGB) image" in capsys.readouterr().err


def test_files_without_sigma_get_it_estimated_and_reported(tmp_path, capsys):
    import skimage.data

    from deepam_tf import DeepAM

    model = tmp_path / "m.keras"
    DeepAM(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2, noise_level_input=True).save(model)
    clean = skimage.data.camera()[:128, :128].astype(float)
    rng = np.random.default_rng(0)
    for name, sigma in (("low.png", 5), ("high.png", 30)):
        noisy = np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 255).astype(np.uint8)
        iio.imwrite(tmp_path / name, noisy)
    code = cli.main(["denoise", str(tmp_path / "low.png"), str(tmp_path / "high.png"),
                     "-o", str(tmp_path / "out"), "--model", str(model)])
    assert code == 0
    printed = {line.split(":")[0].rsplit("/", 1)[-1]: float(line.split()[-1])
               for line in capsys.readouterr().out.splitlines() if "estimated sigma" in line}
    assert 3 < printed["low.png"] < 8 and 24 < printed["high.png"] < 36


def test_without_output_results_go_to_a_sibling_folder_or_beside_the_file(tmp_path, capsys, monkeypatch):
    import skimage.data

    from deepam_tf import DeepAM

    model = tmp_path / "m.keras"
    DeepAM(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2, noise_level_input=True).save(model)
    (tmp_path / "scans" / "old").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        iio.imwrite(tmp_path / "scans" / name, skimage.data.camera()[:16, :24])
    # macOS leaves a "._NAME" metadata file beside each image on other file systems.
    (tmp_path / "scans" / "._a.png").write_bytes(b"\0\5\26\7 AppleDouble metadata")
    (tmp_path / "scans" / "notes.txt").write_text("scanned 2026")  # not an image type: a note
    iio.imwrite(tmp_path / "c.png", skimage.data.camera()[:16, :24])
    run = ["denoise", str(tmp_path / "scans"), str(tmp_path / "c.png"), "--sigma", "10", "--model", str(model)]
    assert cli.main(run) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == f"denoised 3 of 3 images into {tmp_path}/, {tmp_path / 'scans_denoised'}/"
    assert out.splitlines()[0].startswith("3/3 - ") and "\x1b[" not in out  # a log gets a plain line
    assert "scans: subfolders are not searched (old)" in err
    assert "scans: 1 hidden file(s) left out (._a.png)" in err
    assert "scans: 1 file(s) not named .png/.jpg/" in err and "left out (notes.txt)" in err
    assert sorted(p.name for p in (tmp_path / "scans").iterdir()) == ["._a.png", "a.png", "b.png",
                                                                      "notes.txt", "old"]
    assert sorted(p.name for p in (tmp_path / "scans_denoised").iterdir()) == ["a.png", "b.png"]
    assert (tmp_path / "c_denoised.png").exists()
    # A second run finds no earlier output among its inputs and replaces none of them,
    # refusing each before denoising it.
    before = (tmp_path / "scans_denoised" / "a.png").read_bytes()
    monkeypatch.setattr(restore, "denoise", _no_work)
    assert cli.main(run) == 1
    monkeypatch.undo()
    assert capsys.readouterr().err.count("--overwrite") == 3
    assert (tmp_path / "scans_denoised" / "a.png").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "scans_denoised").iterdir()) == ["a.png", "b.png"]


def test_two_inputs_with_one_output_name_are_refused_before_any_work(tmp_path, capsys):
    import skimage.data

    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        iio.imwrite(tmp_path / folder / "same.png", skimage.data.camera()[:16, :16])
    code = cli.main(["denoise", str(tmp_path / "x" / "same.png"), str(tmp_path / "y" / "same.png"),
                     "--sigma", "10", "-o", str(tmp_path / "out"), "--overwrite"])
    assert code == 1 and "would both be written to" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_input_in_a_format_not_written_goes_into_an_output_folder_as_png(tmp_path, capsys):
    import skimage.data

    from deepam_tf import DeepAM

    model = tmp_path / "m.keras"
    DeepAM(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2, noise_level_input=True).save(model)
    iio.imwrite(tmp_path / "scan.gif", skimage.data.camera()[:16, :24])
    iio.imwrite(tmp_path / "b.png", skimage.data.camera()[:16, :24])
    code = cli.main(["denoise", str(tmp_path / "scan.gif"), str(tmp_path / "b.png"), "--sigma", "10",
                     "--model", str(model), "-o", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.png", "scan.png"]
    assert iio.imread(tmp_path / "out" / "scan.png").shape[:2] == (16, 24)
    # Named explicitly, such an output is still refused, before any work.
    code = cli.main(["denoise", str(tmp_path / "scan.gif"), "--sigma", "10", "--model", str(model),
                     "-o", str(tmp_path / "again.gif")])
    assert code == 1 and "cannot write .gif images" in capsys.readouterr().err
    assert not (tmp_path / "again.gif").exists()


def test_a_fixed_sigma_preset_brings_its_sigma_to_the_command_line(tmp_path, capsys):
    import skimage.data

    noisy = np.clip(skimage.data.camera()[:48, :64] + np.random.default_rng(0).normal(0, 40, (48, 64)), 0, 255)
    iio.imwrite(tmp_path / "n.png", noisy.astype(np.uint8))
    base = ["denoise", str(tmp_path / "n.png"), "--model", "denoise_sigma25", "-o"]
    assert cli.main(base + [str(tmp_path / "alias.png")]) == 0
    assert "estimated sigma" not in capsys.readouterr().out
    assert cli.main(base + [str(tmp_path / "told.png"), "--sigma", "25"]) == 0
    assert cli.main(["denoise", str(tmp_path / "n.png"), "-o", str(tmp_path / "estimated.png")]) == 0
    assert "estimated sigma" in capsys.readouterr().out
    alias, told, estimated = (iio.imread(tmp_path / f"{n}.png") for n in ("alias", "told", "estimated"))
    np.testing.assert_array_equal(alias, told)
    assert np.any(alias != estimated)


def test_evaluate_command_writes_tables_and_keeps_earlier_ones(tmp_path, capsys):
    import skimage.data

    from deepam_tf import DeepAM

    model = tmp_path / "m.keras"
    DeepAM(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2, noise_level_input=True).save(model)
    (tmp_path / "set").mkdir()
    for i in range(2):
        iio.imwrite(tmp_path / "set" / f"{i}.png", skimage.data.camera()[:24, i * 30: i * 30 + 30])
    run = ["evaluate", "--model", str(model), "--folder", str(tmp_path / "set"), "--sigma", "15",
           "-o", str(tmp_path / "table")]
    assert cli.main(run) == 0
    assert "mean PSNR" in capsys.readouterr().out
    assert (tmp_path / "table.csv").read_text().count("\n") == 4  # header, 2 images, mean
    assert cli.main(run) == 1 and "table.csv exists" in capsys.readouterr().err
    assert cli.main(run + ["--overwrite"]) == 0
    assert cli.main(["evaluate", "--model", str(model), "--folder", "no_such_folder"]) == 1
    assert "no_such_folder does not exist" in capsys.readouterr().err


def test_train_command_reports_its_model_and_refuses_to_redo_a_finished_run(tmp_path, capsys):
    import json

    import skimage.data

    (tmp_path / "data" / "train").mkdir(parents=True)
    for i in range(2):
        iio.imwrite(tmp_path / "data" / "train" / f"{i}.png", skimage.data.camera()[:32, i * 32: i * 32 + 32])
    config = {"model": {"stages": 1, "features": 8, "depth": 4, "gamma_layer": 3, "fusion_layer": 2},
              "data": {"train": "train", "patch_size": 16, "batch_size": 2, "sigma": 25},
              "epochs": 1, "steps_per_epoch": 2, "optimizer": {"name": "adam", "learning_rate": 1e-3}}
    (tmp_path / "c.json").write_text(json.dumps(config))
    run = ["train", str(tmp_path / "c.json"), "-o", str(tmp_path / "run"), "--data-dir",
           str(tmp_path / "data")]
    assert cli.main(run) == 0
    out = capsys.readouterr().out
    assert f"2 steps; wrote {tmp_path / 'run' / 'model.keras'}" in out
    # Not a terminal (capsys, a log file): Keras' line per epoch, not its bar's escapes.
    assert "2/2 - " in out and "loss: " in out and "\x1b[" not in out
    assert cli.main(run) == 1 and "holds a finished run" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["upsample-depth", "--depth", "d.png", "--rgb", "r.png", "--scale", "0", "-o", "x.png"], "scale must be >= 2"),
    (["upsample-depth", "--depth", "d.png", "--rgb", "r.png", "--scale", "x4", "-o", "x.png"], "scale must be an integer"),
    (["train", "c.json", "-o", "run", "--epochs", "0"], "epochs must be >= 1"),
    (["export", "denoise_blind", "--format", "tflite", "--size", "1", "64", "-o", "out"], "size must be >= 2"),
])
def test_bad_numbers_on_the_command_line_are_refused_by_argparse(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_auto_takes_a_blind_model_for_an_estimated_sigma(tmp_path, monkeypatch):
    # An estimate that lands exactly on a specialist's σ must still not pick it.
    import skimage.data

    from deepam_tf import restore

    def estimate(level):  # the CLI reports the estimate; denoise estimates and picks by it
        for module in (cli, restore):
            monkeypatch.setattr(module, "estimate_sigma", lambda image: level)

    estimate(25.0)
    noisy = np.clip(skimage.data.camera()[:64, :64] + np.random.default_rng(0).normal(0, 25, (64, 64)), 0, 255)
    iio.imwrite(tmp_path / "n.png", noisy.astype(np.uint8))
    runs = {"estimated": [], "blind": ["--sigma", "25", "--model", "denoise_blind"], "given": ["--sigma", "25"]}
    for name, extra in runs.items():
        assert cli.main(["denoise", str(tmp_path / "n.png"), "-o", str(tmp_path / f"{name}.png")] + extra) == 0
    estimated, blind, given = (iio.imread(tmp_path / f"{n}.png") for n in runs)
    np.testing.assert_array_equal(estimated, blind)
    assert np.any(given != blind)  # --sigma 25 under auto: the σ=25 specialist
    # An estimate above denoise_blind's range takes the high-σ preset, per file.
    estimate(90.0)
    runs = {"high_estimated": [], "high_given": ["--sigma", "90", "--model", "denoise_high_sigma"]}
    for name, extra in runs.items():
        assert cli.main(["denoise", str(tmp_path / "n.png"), "-o", str(tmp_path / f"{name}.png")] + extra) == 0
    np.testing.assert_array_equal(*(iio.imread(tmp_path / f"{n}.png") for n in runs))
    # RGB in the opponent space: the noisiest opponent channel's level picks the preset, as
    # in the API. An estimated σ of 60 is 49 there, in denoise_blind's range.
    estimate(60.0)
    rng = np.random.default_rng(1)
    rgb = np.clip(skimage.data.astronaut()[:48, :48] + rng.normal(0, 60, (48, 48, 3)), 0, 255).astype(np.uint8)
    iio.imwrite(tmp_path / "rgb.png", rgb)
    runs = {"rgb_estimated": [], "rgb_high": ["--sigma", "60", "--model", "denoise_high_sigma"]}
    for name, extra in runs.items():
        assert cli.main(["denoise", str(tmp_path / "rgb.png"), "-o", str(tmp_path / f"{name}.png"),
                         "--colour-space", "opponent"] + extra) == 0
    estimated, high = (iio.imread(tmp_path / f"{n}.png") for n in runs)
    np.testing.assert_array_equal(estimated, restore.denoise(rgb, colour_space="opponent"))
    assert np.any(estimated != high)


@pytest.mark.parametrize("command, task", [("denoise", "denoise"), ("upsample-depth", "depth_sr"),
                                           ("restore-nir", "rgb_nir")])
def test_help_names_the_shipped_presets_of_each_command(capsys, command, task):
    from deepam_tf import list_presets

    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    names = sorted(name for name, meta in list_presets().items() if meta["task"] == task)
    assert names and f"preset ({', '.join(names)}) or .keras file" in shown
