"""Image bytes inside a serving graph, read as :mod:`deepam_tf.image_io` reads files: the
EXIF orientation applied (phone photos; JPEG APP1 and PNG eXIf), and a 16-bit PNG answered
in 16 bits. Plain TensorFlow ops only, so a SavedModel signature can run them.
"""

import tensorflow as tf

from deepam_tf.image_io import EXIF_ORIENTATION
_PNG_SIGNATURE = (0x89, 0x50, 0x4E, 0x47)
_EXIF_APP1 = (0x45, 0x78, 0x69, 0x66, 0x00, 0x00)  # "Exif\0\0"
_PNG_EXIF = (0x65, 0x58, 0x49, 0x66)  # "eXIf"
_PNG_IEND = (0x49, 0x45, 0x4E, 0x44)
_MAX_SEGMENTS = 1 << 20  # a bound on the marker and chunk walks


class _Bytes:
    """The bytes of one encoded image as int64 values, read at any position (0 past the end)."""

    def __init__(self, data):
        values = tf.io.decode_raw(data, tf.uint8)
        self.size = tf.size(values, out_type=tf.int64)
        self.values = tf.concat([values, tf.zeros([1], tf.uint8)], 0)  # read for a position outside

    def at(self, position):
        position = tf.cast(position, tf.int64)
        inside = tf.logical_and(position >= 0, position < self.size)
        return tf.cast(tf.gather(self.values, tf.where(inside, position, self.size)), tf.int64)

    def is_(self, position, expected):
        return tf.reduce_all(tf.stack([tf.equal(self.at(position + i), b) for i, b in enumerate(expected)]))

    def integer(self, position, count, little_endian):
        """An unsigned ``count``-byte integer at ``position`` (scalar or vector)."""
        digits = [self.at(position + i) for i in range(count)]
        little = sum(d * 256**i for i, d in enumerate(digits))
        big = sum(d * 256 ** (count - 1 - i) for i, d in enumerate(digits))
        return tf.where(little_endian, little, big)


def _jpeg_exif(raw):
    """Where the TIFF header of a JPEG's first EXIF segment (APP1 ``Exif\\0\\0``) starts; -1
    if none. Walks the marker segments up to the image data (SOS)."""

    def more(position, found):
        return tf.logical_and(tf.logical_and(found < 0, position + 4 <= raw.size),
                              tf.logical_and(tf.equal(raw.at(position), 0xFF),
                                             tf.logical_not(tf.equal(raw.at(position + 1), 0xDA))))

    def step(position, found):
        marker = raw.at(position + 1)
        fill = tf.equal(marker, 0xFF)  # fill bytes before a marker
        exif = tf.logical_and(tf.equal(marker, 0xE1), raw.is_(position + 4, _EXIF_APP1))
        length = raw.integer(position + 2, 2, False)
        found = tf.where(exif, position + 10, found)
        return tf.where(fill, position + 1, position + 2 + length), found

    _, found = tf.while_loop(more, step, (tf.constant(2, tf.int64), tf.constant(-1, tf.int64)),
                             maximum_iterations=_MAX_SEGMENTS)
    return found


def _png_exif(raw):
    """Where a PNG's eXIf chunk data (a TIFF header) starts; -1 if none. Walks the chunks."""

    def more(position, found):
        return tf.logical_and(tf.logical_and(found < 0, position + 8 <= raw.size),
                              tf.logical_not(raw.is_(position + 4, _PNG_IEND)))

    def step(position, found):
        found = tf.where(raw.is_(position + 4, _PNG_EXIF), position + 8, found)
        return position + 12 + raw.integer(position, 4, False), found

    _, found = tf.while_loop(more, step, (tf.constant(8, tf.int64), tf.constant(-1, tf.int64)),
                             maximum_iterations=_MAX_SEGMENTS)
    return found


def _tiff_orientation(raw, tiff):
    """The Orientation tag of IFD0 of the TIFF structure at ``tiff`` (1 when it has none
    or holds no valid one)."""
    little = raw.is_(tiff, (0x49, 0x49))
    valid = tf.logical_or(little, raw.is_(tiff, (0x4D, 0x4D)))
    ifd = tiff + raw.integer(tiff + 4, 4, little)
    count = tf.minimum(raw.integer(ifd, 2, little), 1024)
    entries = ifd + 2 + 12 * tf.range(count)
    tags = raw.integer(entries, 2, little)
    values = raw.integer(entries + 8, 2, little)
    matches = tf.boolean_mask(values, tf.equal(tags, EXIF_ORIENTATION))
    value = tf.cond(tf.size(matches) > 0, lambda: matches[0], lambda: tf.constant(1, tf.int64))
    return tf.where(tf.logical_and(tf.logical_and(valid, tiff >= 0),
                                   tf.logical_and(value >= 1, value <= 8)), value, 1)


def exif_orientation(data):
    """The EXIF orientation (1-8; 1 when there is none) of PNG or JPEG bytes, a scalar
    int64 tensor, as ``PIL.Image.getexif()`` reads it."""
    raw = _Bytes(data)
    png = raw.is_(0, _PNG_SIGNATURE)
    jpeg = tf.logical_and(tf.equal(raw.at(0), 0xFF), tf.equal(raw.at(1), 0xD8))
    tiff = tf.case([(png, lambda: _png_exif(raw)), (jpeg, lambda: _jpeg_exif(raw))],
                   default=lambda: tf.constant(-1, tf.int64))
    return _tiff_orientation(raw, tiff)


def upright(image, orientation):
    """``image`` ``[H, W, C]`` as a viewer shows it under EXIF ``orientation``
    (``deepam_tf.image_io.UPRIGHT``)."""
    branches = [
        lambda: image,
        lambda: tf.reverse(image, [1]),
        lambda: tf.reverse(image, [0, 1]),
        lambda: tf.reverse(image, [0]),
        lambda: tf.transpose(image, [1, 0, 2]),
        lambda: tf.transpose(tf.reverse(image, [0]), [1, 0, 2]),
        lambda: tf.transpose(tf.reverse(image, [0, 1]), [1, 0, 2]),
        lambda: tf.transpose(tf.reverse(image, [1]), [1, 0, 2]),
    ]
    return tf.switch_case(tf.cast(orientation - 1, tf.int32), branches)


def is_16_bit_png(data):
    """Whether PNG bytes hold 16 bits per sample (the IHDR bit depth)."""
    raw = _Bytes(tf.strings.substr(data, 0, 25))
    return tf.logical_and(raw.is_(0, _PNG_SIGNATURE), tf.equal(raw.at(24), 16))


def decode_upright(data, channels):
    """PNG/JPEG/GIF/BMP bytes -> float32 ``[H, W, C]`` in [0, 1], EXIF orientation applied."""
    image = tf.io.decode_image(data, channels=channels, dtype=tf.float32, expand_animations=False)
    return upright(image, exif_orientation(data))


def encode_png(image, sixteen_bit):
    """float ``[H, W, C]`` in [0, 1] -> PNG bytes, 16 bits per sample where ``sixteen_bit``
    (a scalar bool tensor), 8 otherwise."""
    image = tf.clip_by_value(image, 0.0, 1.0)
    return tf.cond(sixteen_bit,
                   lambda: tf.io.encode_png(tf.cast(tf.round(image * 65535.0), tf.uint16)),
                   lambda: tf.io.encode_png(tf.cast(tf.round(image * 255.0), tf.uint8)))
