"""Image files: every layout and bit depth the command line reads comes back as written,
upright as viewers show it, with its colour profile; what a format cannot hold is refused
or converted with a warning."""

import logging
import struct
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image, ImageCms, ImageOps, PngImagePlugin

from deepam_tf import cli
from deepam_tf.image_io import exif_orientation, read_icc_profile, read_image_file, write_image_file


def _image(channels, dtype):
    rng = np.random.default_rng(channels)
    high = np.iinfo(dtype).max
    shape = (17, 23) if channels == 1 else (17, 23, channels)
    return rng.integers(0, high + 1, shape, dtype=np.int64).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 2, 3, 4], ids=["gray", "gray+alpha", "rgb", "rgba"])
@pytest.mark.parametrize("extension", [".png", ".tif"])
def test_every_layout_and_bit_depth_round_trips_exactly(tmp_path, channels, dtype, extension):
    image = _image(channels, dtype)
    path = str(tmp_path / f"x{extension}")
    write_image_file(path, image)
    np.testing.assert_array_equal(read_image_file(path, keep_alpha=True), image)
    assert read_image_file(path, keep_alpha=True).dtype == dtype


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_a_16_bit_colour_png_from_elsewhere_is_read_at_16_bits(tmp_path, channels):
    # Pillow reads these as 8-bit; the file is written by another encoder (TensorFlow's).
    image = _image(channels, np.uint16)
    (tmp_path / "deep.png").write_bytes(tf.io.encode_png(image).numpy())
    assert (tmp_path / "deep.png").read_bytes()[24] == 16  # the header's bit depth
    np.testing.assert_array_equal(read_image_file(str(tmp_path / "deep.png"), keep_alpha=True), image)


@pytest.mark.parametrize("channels", [1, 2, 3, 4], ids=["gray", "gray+alpha", "rgb", "rgba"])
def test_webp_is_written_lossless_in_colour_with_alpha_and_profile(tmp_path, channels):
    image = _image(channels, np.uint8)
    path = str(tmp_path / "x.webp")
    write_image_file(path, image, icc_profile=_profile("sRGB") if channels >= 3 else None)
    written = read_image_file(path, keep_alpha=True)
    colour = image.reshape(image.shape[:2] + (-1,))[..., : 3 if channels >= 3 else 1]
    np.testing.assert_array_equal(written[..., :3], np.broadcast_to(colour, image.shape[:2] + (3,)))
    if channels in (2, 4):  # the colour under every alpha value is kept (exact)
        np.testing.assert_array_equal(written[..., 3], image[..., -1])
    else:
        assert written.shape == image.shape[:2] + (3,)
    assert (read_icc_profile(path) is not None) == (channels >= 3)


@pytest.mark.parametrize("extension", [".jpg", ".bmp", ".webp"])
def test_16_bits_into_an_8_bit_format_are_rounded_and_logged(tmp_path, caplog, extension):
    image = _image(3, np.uint16)
    path = str(tmp_path / f"x{extension}")
    with caplog.at_level(logging.WARNING, logger="deepam_tf"):
        write_image_file(path, image)
    assert f"{extension} images hold 8 bits per channel" in caplog.text
    written = read_image_file(path)
    assert written.dtype == np.uint8
    expected = np.round(image / 257.0)
    if extension in (".bmp", ".webp"):  # lossless
        np.testing.assert_array_equal(written, expected)
    else:  # lossy
        assert abs(written.mean() - expected.mean()) < 3


@pytest.mark.parametrize("extension", [".jpg", ".bmp"])
@pytest.mark.parametrize("channels", [2, 4], ids=["gray+alpha", "rgba"])
def test_alpha_into_a_jpeg_or_bmp_is_dropped_and_logged(tmp_path, caplog, channels, extension):
    # Pillow cannot write gray+alpha BMPs, and reads the alpha of the RGBA ones it writes
    # as nothing.
    image = np.dstack([skimage.data.astronaut()[:24, :32, : channels - 1],
                       np.full((24, 32), 9, np.uint8)])
    path = str(tmp_path / f"x{extension}")
    with caplog.at_level(logging.WARNING, logger="deepam_tf"):
        write_image_file(path, image)
    assert f"{extension} images hold no alpha channel" in caplog.text
    written = read_image_file(path, keep_alpha=True)
    assert written.shape == image[..., :-1].squeeze().shape
    assert np.abs(written.astype(int) - image[..., :-1].squeeze()).mean() < 3


def test_an_unsupported_dtype_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError, match="x.png: cannot write an image of dtype int32"):
        write_image_file(str(tmp_path / "x.png"), np.zeros((4, 4), np.int32))
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_keeps_a_16_bit_colour_png_at_16_bits(tmp_path, model_path):
    clean = skimage.data.astronaut()[:32, :40].astype(np.uint16) * 257
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 10 * 257, clean.shape), 0, 65535).astype(np.uint16)
    (tmp_path / "in.png").write_bytes(tf.io.encode_png(noisy).numpy())
    assert cli.main(["denoise", str(tmp_path / "in.png"), "--sigma", "10", "--model", model_path,
                     "-o", str(tmp_path / "out.png")]) == 0
    out = read_image_file(str(tmp_path / "out.png"))
    assert out.dtype == np.uint16 and out.shape == clean.shape
    assert np.any(out % 257 != 0)  # more than 8 bits of it survived


def test_an_output_format_that_is_not_written_is_refused_before_any_work(tmp_path, model_path,
                                                                         capsys, monkeypatch):
    from deepam_tf import restore

    write_image_file(str(tmp_path / "a.png"), skimage.data.camera()[:16, :16])
    monkeypatch.setattr(restore, "denoise", lambda *a, **k: pytest.fail("denoised"))
    for args in (["denoise", str(tmp_path / "a.png"), "-o", str(tmp_path / "a.xyz")],
                 ["denoise", "-o", str(tmp_path / "demo.gif")]):
        assert cli.main(args + ["--sigma", "10", "--model", model_path]) == 1
        assert "cannot write" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_an_input_in_a_format_not_written_gets_a_png_beside_it(tmp_path, model_path):
    Image.fromarray(skimage.data.camera()[:16, :16]).save(tmp_path / "a.gif")
    assert cli.main(["denoise", str(tmp_path / "a.gif"), "--sigma", "10", "--model", model_path]) == 0
    assert read_image_file(str(tmp_path / "a_denoised.png")).shape[:2] == (16, 16)


def test_the_command_line_denoises_a_webp_into_a_webp(tmp_path, model_path):
    # A WebP photo is denoised as the colour image it is and written lossless beside it:
    # through the untrained model (the identity) it comes back unchanged.
    Image.fromarray(skimage.data.astronaut()[:24, :32]).save(tmp_path / "a.webp", lossless=True)
    assert cli.main(["denoise", str(tmp_path / "a.webp"), "--sigma", "10", "--model", model_path]) == 0
    np.testing.assert_array_equal(read_image_file(str(tmp_path / "a_denoised.webp")),
                                  skimage.data.astronaut()[:24, :32])


def test_evaluation_reads_16_bit_colour_and_float_tiff_ground_truth_at_full_precision(tmp_path):
    from deepam_tf.evaluation import read_gray, read_rgb

    rgb = _image(3, np.uint16)
    (tmp_path / "deep.png").write_bytes(tf.io.encode_png(rgb).numpy())
    np.testing.assert_allclose(read_rgb(str(tmp_path / "deep.png")), rgb / 65535.0, atol=1e-7)
    gray = (rgb[..., 0] / 65535.0).astype(np.float32)
    write_image_file(str(tmp_path / "gray.tif"), gray)
    np.testing.assert_array_equal(read_gray(str(tmp_path / "gray.tif")), gray)
    iio.imwrite(tmp_path / "wide.tif", np.full((4, 4), 7.0, np.float32))  # 0-255 scale
    with pytest.raises(ValueError, match="wide.tif: a clean floating-point image must have "):
        read_gray(str(tmp_path / "wide.tif"))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("layout", ["gray", "rgb"])
def test_an_exif_orientation_is_applied_as_viewers_apply_it(tmp_path, orientation, layout):
    pixels = skimage.data.astronaut()[:20, :30] if layout == "rgb" else skimage.data.camera()[:20, :30]
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "phone.png", exif=exif.tobytes())
    with Image.open(tmp_path / "phone.png") as handle:
        shown = np.asarray(ImageOps.exif_transpose(handle))
    image = read_image_file(str(tmp_path / "phone.png"))
    np.testing.assert_array_equal(image, shown)
    assert image.shape[:2] == ((30, 20) if orientation >= 5 else (20, 30))


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _exif_bytes(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


# Chunks that give a PNG an orientation when they follow its image data, as some writers
# place them: eXIf, ImageMagick's "Raw profile type exif" text, and XMP.
LATE_ORIENTATION_CHUNKS = {
    "eXIf": lambda o: _png_chunk(b"eXIf", _exif_bytes(o)[6:]),  # the bytes after "Exif\0\0"
    "raw profile": lambda o: _png_chunk(b"tEXt", b"Raw profile type exif\0\nexif\n   %d\n%s\n" % (
        len(_exif_bytes(o)), _exif_bytes(o).hex().encode())),
    "xmp": lambda o: _png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + (
        b'<x:xmpmeta><rdf:Description tiff:Orientation="%d"/></x:xmpmeta>' % o)),
    "comment only": lambda o: _png_chunk(b"tEXt", b"Comment\0no orientation here"),
}


@pytest.mark.parametrize("chunk", list(LATE_ORIENTATION_CHUNKS))
def test_an_orientation_after_the_png_image_data_is_read(tmp_path, chunk):
    Image.fromarray(skimage.data.camera()[:20, :30]).save(tmp_path / "plain.png")
    data = (tmp_path / "plain.png").read_bytes()
    end = data.rindex(b"IEND") - 4
    (tmp_path / "late.png").write_bytes(data[:end] + LATE_ORIENTATION_CHUNKS[chunk](6) + data[end:])
    with Image.open(tmp_path / "late.png") as handle:
        shown = np.asarray(ImageOps.exif_transpose(handle))
    expected = 1 if chunk == "comment only" else 6
    assert exif_orientation(str(tmp_path / "late.png")) == expected
    image = read_image_file(str(tmp_path / "late.png"))
    np.testing.assert_array_equal(image, shown)
    assert image.shape == ((30, 20) if expected == 6 else (20, 30))


def test_the_header_read_of_a_png_does_not_decode_its_pixels(tmp_path, monkeypatch):
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(skimage.data.camera()[:20, :30]).save(tmp_path / "early.png", exif=exif.tobytes())
    Image.fromarray(skimage.data.camera()[:20, :30]).save(tmp_path / "plain.png")
    decoded = []
    load = PngImagePlugin.PngImageFile.load
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load",
                        lambda self: decoded.append(1) or load(self))
    assert exif_orientation(str(tmp_path / "early.png")) == 8
    assert exif_orientation(str(tmp_path / "plain.png")) == 1
    assert read_icc_profile(str(tmp_path / "plain.png")) is None
    assert decoded == []


def test_a_rotated_phone_photo_is_written_upright(tmp_path, model_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    Image.fromarray(skimage.data.astronaut()[:24, :40]).save(tmp_path / "phone.jpg", exif=exif.tobytes())
    assert cli.main(["denoise", str(tmp_path / "phone.jpg"), "--sigma", "5", "--model", model_path,
                     "-o", str(tmp_path / "out.png")]) == 0
    with Image.open(tmp_path / "out.png") as out:
        assert out.size == (24, 40) and out.getexif().get(0x0112) is None  # shown as the input is


def test_a_stack_of_pages_or_frames_is_refused_and_one_frame_is_read(tmp_path):
    camera = skimage.data.camera()[:20, :30]
    iio.imwrite(tmp_path / "pages.tif", np.stack([camera, 255 - camera]))  # read as (2, 20, 30)
    with pytest.raises(ValueError, match=r"pages.tif: shape \(2, 20, 30\) holds several frames or pages"):
        read_image_file(str(tmp_path / "pages.tif"))
    frames = [Image.fromarray(camera), Image.fromarray(255 - camera)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(ValueError, match=r"anim.gif: shape \(2, 20, 30, 3\) holds several frames"):
        read_image_file(str(tmp_path / "anim.gif"))
    frames[0].save(tmp_path / "still.gif")
    assert read_image_file(str(tmp_path / "still.gif")).shape[:2] == (20, 30)


def _profile(space):
    return ImageCms.ImageCmsProfile(ImageCms.createProfile(space)).tobytes()


@pytest.mark.parametrize("extension", [".png", ".jpg", ".tif"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_colour_profile_is_embedded_in_png_jpeg_and_tiff(tmp_path, extension, dtype):
    profile = _profile("sRGB")
    image = _image(3, dtype)
    path = str(tmp_path / f"x{extension}")
    write_image_file(path, image, icc_profile=profile)
    assert read_icc_profile(path) == profile
    with Image.open(path) as pillow:  # independently of this module
        assert pillow.info["icc_profile"] == profile
    if extension != ".jpg":
        np.testing.assert_array_equal(read_image_file(path), image)  # pixels untouched


def test_a_profile_of_another_colour_space_is_not_embedded(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="deepam_tf"):
        write_image_file(str(tmp_path / "gray.png"), _image(1, np.uint8), icc_profile=_profile("sRGB"))
    assert "colour profile (RGB) does not fit a gray image" in caplog.text
    assert read_icc_profile(str(tmp_path / "gray.png")) is None


def test_the_command_line_keeps_the_inputs_colour_profile(tmp_path, model_path):
    profile = _profile("sRGB")
    Image.fromarray(skimage.data.astronaut()[:24, :32]).save(tmp_path / "in.jpg", icc_profile=profile)
    Image.fromarray(skimage.data.camera()[:24, :32]).save(tmp_path / "plain.png")
    assert cli.main(["denoise", str(tmp_path / "in.jpg"), str(tmp_path / "plain.png"), "--sigma", "5",
                     "--model", model_path, "-o", str(tmp_path / "out")]) == 0
    assert read_icc_profile(str(tmp_path / "out" / "in.jpg")) == profile
    assert read_icc_profile(str(tmp_path / "out" / "plain.png")) is None


def test_large_images_are_read_past_pillows_bomb_guard_and_bounded_by_memory(tmp_path, monkeypatch):
    # Pillow refuses images over 2x MAX_IMAGE_PIXELS (179 MP: a 200 MP phone photo) and
    # warns above it; a small limit stands in for a large image here.
    import warnings

    from PIL import Image

    from deepam_tf.models import tiling

    path, image = str(tmp_path / "big.png"), skimage.data.astronaut()[:64, :64]
    write_image_file(path, image)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        np.testing.assert_array_equal(read_image_file(path), image)
    assert Image.MAX_IMAGE_PIXELS == 1000  # Pillow's own setting is left as it was
    # What bounds a read is the memory: 64x64x3 float32 is 48 KiB.
    monkeypatch.setattr(tiling, "available_memory", lambda: 40 * 1024)
    with pytest.raises(ValueError, match=r"big.png: a 64x64 image \(0 MP, 3 channel\(s\)\) needs 0.0 GiB "
                                         r"as float32, but only 0.0 GiB is available"):
        read_image_file(path)


def test_pillows_limit_is_lifted_while_any_thread_reads_and_restored_after_the_last(monkeypatch):
    import threading

    from PIL import Image

    from deepam_tf import image_io

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    inside, leave_first, seen = threading.Event(), threading.Event(), []

    def first():
        with image_io._pillow_without_pixel_limit():
            inside.set()
            leave_first.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait(10)
    with image_io._pillow_without_pixel_limit():  # a second read overlaps the first
        leave_first.set()
        thread.join(10)
        seen.append(Image.MAX_IMAGE_PIXELS)  # the first has left; this one still reads
    assert seen == [None]
    assert Image.MAX_IMAGE_PIXELS == 1000
