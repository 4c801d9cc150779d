"""The serving graph reads image bytes as deepam_tf.image_io reads files (EXIF orientation,
16-bit PNG), checked against Pillow and image_io."""

import io
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from deepam_tf import image_io
from deepam_tf.export import serving_image

decode = tf.function(serving_image.decode_upright)
orientation = tf.function(serving_image.exif_orientation)


def _encoded(pixels, fmt, exif=None, **options):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **({"exif": exif} if exif is not None else {}), **options)
    return buffer.getvalue()


def _exif(value):
    exif = Image.Exif()
    exif[image_io.EXIF_ORIENTATION] = value
    return exif.tobytes()


def _big_endian_exif(value):
    """``Exif\\0\\0`` and a Motorola-order TIFF block (Pillow writes Intel order) with a
    second tag before Orientation."""
    entries = struct.pack(">HHII", 0x010F, 2, 4, 0) + struct.pack(">HHIHH", 0x0112, 3, 1, value, 0)
    return b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 2) + entries + b"\0" * 4


@pytest.mark.parametrize("value", range(1, 9))
def test_png_bytes_come_out_as_image_io_reads_the_file(value, tmp_path):
    pixels = np.random.default_rng(value).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    data = _encoded(pixels, "PNG", _exif(value))
    (tmp_path / "a.png").write_bytes(data)
    want = image_io.read_image_file(str(tmp_path / "a.png"))
    got = np.round(decode(tf.constant(data), 0).numpy() * 255).astype(np.uint8)
    np.testing.assert_array_equal(got, want)
    if value > 1:  # the orientation mattered
        assert got.shape != pixels.shape or not np.array_equal(got, pixels)


@pytest.mark.parametrize("value", range(1, 9))
def test_jpeg_orientation_is_the_one_pillow_reads(value):
    pixels = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    icc = b"\0" * 600  # an APP2 segment before the EXIF one
    for data in (_encoded(pixels, "JPEG", _exif(value)),
                 _encoded(pixels, "JPEG", _exif(value), icc_profile=icc),
                 _encoded(pixels, "JPEG", _big_endian_exif(value))):
        with Image.open(io.BytesIO(data)) as image:
            assert image.getexif().get(image_io.EXIF_ORIENTATION) == value
        assert int(orientation(tf.constant(data))) == value


def test_no_or_broken_exif_means_upright():
    pixels = np.zeros((6, 4), np.uint8)
    broken = b"Exif\x00\x00II\x2a\x00" + struct.pack("<I", 1 << 30)  # IFD0 past the end
    for data in (_encoded(pixels, "PNG"), _encoded(pixels, "JPEG"), _encoded(pixels, "JPEG", broken),
                 _encoded(pixels, "JPEG", _exif(9)), _encoded(pixels, "BMP"), b"", b"\xff\xd8"):
        assert int(orientation(tf.constant(data))) == 1


def test_sixteen_bit_pngs_are_told_apart_and_written_back_in_16_bits():
    gray16 = np.random.default_rng(0).integers(0, 65536, (4, 6), dtype=np.uint16)
    rgb16 = np.random.default_rng(1).integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    assert bool(serving_image.is_16_bit_png(tf.io.encode_png(gray16[..., None])))
    assert bool(serving_image.is_16_bit_png(tf.io.encode_png(rgb16)))
    assert not bool(serving_image.is_16_bit_png(tf.io.encode_png(np.zeros((4, 6, 1), np.uint8))))
    assert not bool(serving_image.is_16_bit_png(tf.constant(_encoded(np.zeros((4, 6), np.uint8), "JPEG"))))
    image = decode(tf.io.encode_png(rgb16), 0)
    back = tf.io.decode_png(serving_image.encode_png(image, tf.constant(True)), dtype=tf.uint16).numpy()
    np.testing.assert_array_equal(back, rgb16)
    eight = tf.io.decode_png(serving_image.encode_png(image, tf.constant(False)))
    assert eight.dtype == tf.uint8
    np.testing.assert_array_equal(eight.numpy(), np.round(rgb16 / 257).astype(np.uint8))
