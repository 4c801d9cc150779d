"""The README's bad-input table, one test per row: what a new user might feed the
command line or the one-call API, and the clear outcome each gets."""

import os
import re

import imageio.v3 as iio
import numpy as np
import pytest
import skimage.data
from PIL import Image

from deepam_tf import cli, denoise
from deepam_tf.image_io import read_image_file, write_image_file
from deepam_tf.models import tiling



def _run(args, capsys):
    code = cli.main(args)
    return code, capsys.readouterr().err


def test_empty_file(tmp_path, model_path, capsys):
    (tmp_path / "empty.png").write_bytes(b"")
    code, err = _run(["denoise", str(tmp_path / "empty.png"), "-o", str(tmp_path / "o.png"),
                      "--model", model_path], capsys)
    assert code == 1 and "empty.png: empty file" in err and not (tmp_path / "o.png").exists()


def test_text_file_named_png(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ValueError, match="notes.png: not a readable image"):
        read_image_file(str(tmp_path / "notes.png"))


def test_truncated_png(tmp_path):
    iio.imwrite(tmp_path / "full.png", skimage.data.camera())
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.png: not a readable image.*truncated"):
        read_image_file(str(tmp_path / "cut.png"))


def test_16_bit_png_round_trips_as_16_bit(tmp_path, model_path):
    image = skimage.data.camera()[:40, :40].astype(np.uint16) * 257
    iio.imwrite(tmp_path / "deep.png", image)
    assert cli.main(["denoise", str(tmp_path / "deep.png"), "-o", str(tmp_path / "out.png"),
                     "--model", model_path]) == 0
    out = iio.imread(tmp_path / "out.png")
    assert out.dtype == np.uint16 and out.shape == image.shape


def test_one_pixel_image(model_path):
    with pytest.raises(ValueError, match="at least 2x2"):
        denoise(np.zeros((1, 1), np.uint8), 25, model=model_path)


def test_rgba_drops_alpha(tmp_path):
    rgba = np.dstack([skimage.data.astronaut()[:20, :20], np.full((20, 20), 128, np.uint8)])
    iio.imwrite(tmp_path / "a.png", rgba)
    np.testing.assert_array_equal(read_image_file(str(tmp_path / "a.png")), rgba[..., :3])


@pytest.mark.parametrize("layout", ["gray+alpha", "rgb+alpha"])
def test_command_line_carries_alpha_through(tmp_path, model_path, capsys, layout):
    rng = np.random.default_rng(0)
    colour = skimage.data.camera()[:24, :32] if layout == "gray+alpha" else skimage.data.astronaut()[:24, :32]
    alpha = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    image = np.dstack([colour, alpha])
    iio.imwrite(tmp_path / "a.png", image)
    assert cli.main(["denoise", str(tmp_path / "a.png"), "--sigma", "10", "--model", model_path,
                     "-o", str(tmp_path / "out.png")]) == 0
    out = iio.imread(tmp_path / "out.png")
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., -1], alpha)
    assert np.abs(out[..., :-1].astype(int) - colour.reshape(24, 32, -1)).mean() < 20


def test_sigma_out_of_range_is_refused_before_any_work(tmp_path, model_path, capsys):
    iio.imwrite(tmp_path / "a.png", skimage.data.camera()[:16, :16])
    for bad in ("-5", "0", "1e6", "nan", "abc"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["denoise", str(tmp_path / "a.png"), "--sigma", bad, "--model", model_path,
                      "-o", str(tmp_path / "out.png")])
        assert exit_info.value.code == 2
        assert "sigma" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_float_tiff_round_trips_as_float_and_a_0_255_one_is_refused_by_name(tmp_path, model_path, capsys):
    clean = skimage.data.camera()[:32, :40] / 255.0
    noisy = clean + np.random.default_rng(0).normal(0, 20 / 255, clean.shape)
    iio.imwrite(tmp_path / "unit.tif", noisy.astype(np.float64))
    iio.imwrite(tmp_path / "wide.tif", (noisy * 255).astype(np.float32))
    assert read_image_file(str(tmp_path / "unit.tif")).dtype == np.float32
    code = cli.main(["denoise", str(tmp_path / "unit.tif"), str(tmp_path / "wide.tif"), "--sigma", "20",
                     "--model", model_path, "-o", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert "wide.tif: image is float with values in" in err and "[0, 1] scale" in err
    out = iio.imread(tmp_path / "out" / "unit.tif")
    assert out.dtype == np.float32 and out.shape == clean.shape
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert not (tmp_path / "out" / "wide.tif").exists()


def test_jpeg_outputs_are_written_at_high_quality(tmp_path):
    camera = skimage.data.camera()
    write_image_file(str(tmp_path / "c.jpg"), camera)
    error = (iio.imread(tmp_path / "c.jpg").astype(float) - camera) ** 2
    assert 10 * np.log10(255.0**2 / error.mean()) > 42  # imageio's default quality gives 35


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    rgb = skimage.data.astronaut()[:64, :64]
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    image = read_image_file(str(tmp_path / "c.jpg"))
    assert image.shape == (64, 64, 3)
    assert np.abs(image.astype(int) - rgb).mean() < 6  # JPEG loss only, not CMY as RGB


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_an_array(model_path, bad):
    image = np.full((8, 8), 0.5, np.float32)
    image[3, 3] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        denoise(image, 25, model=model_path)


@pytest.mark.parametrize(
    "image, match",
    [
        (np.full((8, 8), 200.0, np.float32), r"float images must be on the \[0, 1\] scale"),
        (np.full((8, 8), 300, np.int32), "convert integer images to uint8"),
        (np.full((8, 8), -5, np.int16), "convert integer images to uint8"),
    ],
    ids=["float_0_255", "int32_above_255", "negative_int16"],
)
def test_array_outside_its_range(model_path, image, match):
    with pytest.raises(ValueError, match=match):
        denoise(image, 25, model=model_path)


def test_existing_output_is_kept_unless_overwrite(tmp_path, model_path, capsys):
    iio.imwrite(tmp_path / "in.png", skimage.data.camera()[:16, :16])
    (tmp_path / "out.png").write_bytes(b"precious")
    args = ["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", model_path]
    code, err = _run(args, capsys)
    assert code == 1 and "--overwrite" in err
    assert (tmp_path / "out.png").read_bytes() == b"precious"
    assert cli.main(args + ["--overwrite"]) == 0
    assert iio.imread(tmp_path / "out.png").shape == (16, 16)


def test_output_folder_that_cannot_be_written(tmp_path, model_path, capsys):
    iio.imwrite(tmp_path / "in.png", skimage.data.camera()[:16, :16])
    (tmp_path / "file").write_text("a file, not a folder")
    code, err = _run(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "file" / "o.png"),
                      "--model", model_path], capsys)
    assert code == 1 and "does not exist" in err


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    """Ctrl-C once the temporary file is written: no output, no temporary file left."""
    from deepam_tf import image_io

    written = []

    def interrupted(source, target):
        written.append(os.path.getsize(source))
        raise KeyboardInterrupt

    monkeypatch.setattr(image_io.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image_file(str(tmp_path / "o.png"), np.zeros((4, 4), np.uint8))
    assert written and written[0] > 0 and list(tmp_path.iterdir()) == []


def test_ctrl_c_during_a_folder_run(tmp_path, model_path, monkeypatch, capsys):
    from deepam_tf import restore

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in "abc":
        iio.imwrite(inputs / f"{name}.png", skimage.data.camera()[:16, :16])
    calls = []
    real = restore.denoise

    def stop_at_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(restore, "denoise", stop_at_second)
    code, err = _run(["denoise", str(inputs), "-o", str(tmp_path / "out"), "--model", model_path], capsys)
    assert code == 130 and "interrupted" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]


def test_huge_image_is_refused_before_any_copy(model_path, monkeypatch):
    monkeypatch.setattr(tiling, "available_memory", lambda: 64 << 20)
    huge = np.broadcast_to(np.uint8(7), (4000, 3000))  # 12 MP, no memory of its own
    with pytest.raises(ValueError, match="12 MP.*GiB is available"):
        denoise(huge, 25, model=model_path)


def test_a_model_file_that_is_missing_corrupt_or_not_deepam(tmp_path, capsys):
    import keras

    iio.imwrite(tmp_path / "a.png", skimage.data.camera()[:16, :16])
    (tmp_path / "junk.keras").write_text("not a model")
    keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(1, 3, padding="same")]).save(
        tmp_path / "other.keras")
    for name, message in [("missing.keras", "model file .*missing.keras does not exist"),
                          ("junk.keras", "junk.keras: not a .keras model file"),
                          ("other.keras", "other.keras holds a Sequential, not a deepam_tf DeepAM model"),
                          ("depth_x4", "model depth_x4 takes 1 image and 3 guidance channel"),
                          ("", "is a folder; give a .keras file or a preset name")]:
        model = name if name and "." not in name else str(tmp_path / name)
        code, err = _run(["denoise", str(tmp_path / "a.png"), "--sigma", "25", "--model", model], capsys)
        assert code == 1 and re.search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "junk.keras", "other.keras"]


@pytest.mark.parametrize("form", ["saved_model", "tflite"])
def test_an_export_into_a_file_is_refused_before_any_work(tmp_path, model_path, capsys, form):
    (tmp_path / "afile").write_text("keep me")
    code, err = _run(["export", model_path, "--format", form, "-o", str(tmp_path / "afile")], capsys)
    assert code == 1 and "afile is a file" in err
    assert (tmp_path / "afile").read_text() == "keep me"


@pytest.mark.parametrize("form", ["saved_model", "tflite"])
@pytest.mark.parametrize("name", ["../escape", "a/b", ".."])
def test_an_export_name_that_is_not_one_folder_name_is_refused(tmp_path, model_path, capsys, form, name):
    # It was joined to the path: "../escape" wrote beside the output folder.
    code, err = _run(["export", model_path, "--format", form, "-o", str(tmp_path / "out"), "--name", name], capsys)
    assert code == 1 and f"--name must be one folder name of letters, digits, '_', '-' and '.', got {name!r}" in err
    assert list(tmp_path.iterdir()) == []


def test_export_saved_model_refuses_a_model_name_that_is_not_one_folder_name(tmp_path, model_path):
    from deepam_tf.export import export_saved_model
    from deepam_tf.models import load_preset

    with pytest.raises(ValueError, match=r"model name must be one folder name .*, got '\.\./x'"):
        export_saved_model(load_preset(model_path), str(tmp_path), "../x")
    assert list(tmp_path.iterdir()) == []
