"""Reading and writing image files with clear errors; writes never leave partial files."""

import contextlib
import logging
import os
import struct
import threading

import numpy as np

logger = logging.getLogger("deepam_tf")

JPEG_QUALITY = 95
TIFF_EXTENSIONS = (".tif", ".tiff")
# WebP is written lossless, and holds colour only (a gray image is written as RGB).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp") + TIFF_EXTENSIONS  # read from folders
SIXTEEN_BIT_EXTENSIONS = (".png",) + TIFF_EXTENSIONS  # other formats get 8-bit results
NO_ALPHA_EXTENSIONS = (".jpg", ".jpeg", ".bmp")  # Pillow writes no readable BMP alpha
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG chunks that may hold EXIF or an orientation: eXIf, and text ("Raw profile type exif", XMP).
PNG_METADATA_CHUNKS = (b"eXIf", b"tEXt", b"zTXt", b"iTXt")
LUMA_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601
EXIF_ORIENTATION = 0x0112


def rgb_to_gray(image):
    """ITU-R 601 luma of an ``[H, W, 3+]`` float image, ``[H, W]``."""
    return image[..., :3] @ np.array(LUMA_WEIGHTS, np.float32)


_LIFT_LOCK = threading.Lock()
_lifted = 0  # reads inside _pillow_without_pixel_limit now
_pillow_limit = None  # Pillow's limit while it is lifted


@contextlib.contextmanager
def _pillow_without_pixel_limit():
    """Pillow's decompression-bomb guard lifted for the block: it refuses images over
    179 MP (a 200 MP phone photo among them) and warns over 89 MP. What a read decodes is
    bounded by the memory available instead (:func:`_check_decoded_size`)."""
    from PIL import Image

    global _lifted, _pillow_limit
    with _LIFT_LOCK:  # reads in several threads: the last one out restores the limit
        if _lifted == 0:
            _pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        _lifted += 1
    try:
        yield
    finally:
        with _LIFT_LOCK:
            _lifted -= 1
            if _lifted == 0:
                Image.MAX_IMAGE_PIXELS = _pillow_limit


def _pillow_info(path):
    """``(mode, EXIF orientation, ICC profile, (width, height), bands)`` of an image file
    as Pillow sees it from its header; ``(None, 1, None, None, None)`` when Pillow cannot
    open it (orientation 1: no tag)."""
    try:
        from PIL import Image

        with _pillow_without_pixel_limit(), Image.open(path) as handle:
            if handle.format == "PNG" and "exif" not in handle.info and not _png_has_late_metadata(path):
                # PngImageFile.getexif decodes the whole image to reach chunks after it;
                # with none that can hold EXIF there, the chunks read so far are all there is.
                exif = Image.Image.getexif(handle)
            else:
                exif = handle.getexif()
            orientation = int(exif.get(EXIF_ORIENTATION, 1))
            return (handle.mode, orientation, handle.info.get("icc_profile") or None,
                    handle.size, len(handle.getbands()))
    except Exception:
        return None, 1, None, None, None


def _png_has_late_metadata(path):
    """Whether a PNG file has a chunk after its image data that may hold EXIF (Pillow reads
    the chunks before it at open); True when the chunk walk cannot finish, so the caller
    falls back to Pillow's full read. Seeks past the image data without reading it."""
    try:
        with open(path, "rb") as handle:
            handle.seek(len(PNG_SIGNATURE))
            after_image = False
            while True:
                header = handle.read(8)
                if len(header) < 8:
                    return True
                length, kind = struct.unpack(">I4s", header)
                if kind == b"IEND":
                    return False
                if kind == b"IDAT":
                    after_image = True
                elif after_image and kind in PNG_METADATA_CHUNKS:
                    return True
                handle.seek(length + 4, os.SEEK_CUR)  # data and CRC
    except (OSError, TypeError):
        return True


def _check_decoded_size(path, size, bands):
    """ValueError when the image, as float32 (what every use of it makes), would not fit
    in the memory available: a huge or crafted file is refused before it is decoded."""
    from deepam_tf.models.tiling import available_memory

    if size is None:
        return
    need, memory = 4 * size[0] * size[1] * bands, available_memory()
    if need > memory:
        raise ValueError(f"{path}: a {size[0]}x{size[1]} image ({size[0] * size[1] / 1e6:.0f} MP, "
                         f"{bands} channel(s)) needs {need / 2**30:.1f} GiB as float32, but only "
                         f"{memory / 2**30:.1f} GiB is available")


def read_icc_profile(path):
    """The ICC colour profile embedded in an image file (bytes), or None: what
    :func:`write_image_file` takes to keep an output's colours those of its input (a
    wide-gamut photo, e.g. Display P3, shown as sRGB without it looks washed out)."""
    return _pillow_info(path)[2]


def exif_orientation(path):
    """The EXIF orientation tag of an image file: 1 (upright) when it has none or Pillow
    cannot read it."""
    return _pillow_info(path)[1]


# The array as a viewer shows it, for each EXIF orientation (as PIL.ImageOps.exif_transpose).
UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
    8: lambda a: np.rot90(a, 1),
}


def read_image_file(path, keep_alpha=False):
    """An image file as a numpy array (uint8/uint16, ``[H, W]`` or ``[H, W, 3]``; a
    floating-point TIFF as float32, nominally in [0, 1]).

    An alpha channel is dropped (kept as the last channel with ``keep_alpha``: ``[H, W, 2]``
    or ``[H, W, 4]``), CMYK is converted to RGB, 1-bit images become 0/255, and an EXIF
    orientation (phone photos) is applied, so the array is the image as viewers show it.
    Raises ``ValueError`` naming the file when it is missing,
    empty or not a readable image.
    """
    import imageio.v3 as iio

    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: empty file")
    mode, orientation, _, size, bands = _pillow_info(path)
    _check_decoded_size(path, size, bands)
    try:
        with _pillow_without_pixel_limit():
            image = np.asarray(iio.imread(path))
            if image.ndim == 3 and image.shape[-1] == 4 and mode == "CMYK":
                image = np.asarray(iio.imread(path, mode="RGB"))
    except Exception as error:  # imageio raises many types for corrupt data
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: not a readable image ({reason})") from None
    if image.dtype == np.uint8 and _png_bit_depth(path) == 16:
        image = _decode_png16(path)  # Pillow reads 16-bit colour PNGs as 8-bit
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.dtype.kind == "f" and _is_tiff(path):
        image = image.astype(np.float32)
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]  # one frame (a GIF)
    if image.ndim == 4 or (image.ndim == 3 and image.shape[-1] > 4):
        raise ValueError(f"{path}: shape {image.shape} holds several frames or pages, or more "
                         f"than 4 channels; one image of 1 to 4 channels per file is read")
    if image.ndim not in (2, 3) or image.dtype not in (np.uint8, np.uint16, np.float32):
        raise ValueError(
            f"{path}: unsupported image (shape {image.shape}, dtype {image.dtype}); "
            f"8- or 16-bit integer images, or floating-point TIFF"
        )
    if orientation in UPRIGHT:
        image = np.ascontiguousarray(UPRIGHT[orientation](image))
    if image.ndim == 3 and image.shape[-1] in (2, 4) and not keep_alpha:
        image = split_alpha(image)[0]
    return image


def split_alpha(image):
    """``(colour, alpha)`` of an ``[H, W, 2|4]`` image (gray or RGB plus alpha); ``(image,
    None)`` for any other layout. A gray colour part is ``[H, W]``."""
    if image.ndim != 3 or image.shape[-1] not in (2, 4):
        return image, None
    colour = image[..., :-1]
    return (colour[..., 0] if colour.shape[-1] == 1 else colour), image[..., -1]


def join_alpha(colour, alpha):
    """Inverse of :func:`split_alpha`."""
    if alpha is None:
        return colour
    colour = colour[..., None] if colour.ndim == 2 else colour
    return np.concatenate([colour, alpha[..., None].astype(colour.dtype)], axis=-1)


def _png_bit_depth(path):
    """The bit depth in a PNG file's header, or None for any other file."""
    with open(path, "rb") as handle:
        header = handle.read(26)
    return header[24] if len(header) == 26 and header.startswith(PNG_SIGNATURE) else None


def _decode_png16(path):
    """A 16-bit PNG (already read once by Pillow, so known to be sound) as uint16."""
    import tensorflow as tf

    with open(path, "rb") as handle:
        image = tf.io.decode_png(handle.read(), channels=0, dtype=tf.uint16).numpy()
    return image[..., 0] if image.shape[-1] == 1 else image


def _is_tiff(path):
    return os.path.splitext(path)[1].lower() in TIFF_EXTENSIONS


def as_unit_float(image):
    """An image array as float32 on the [0, 1] scale: uint8/uint16 divided by their
    maximum, a float image (a floating-point TIFF) as it is."""
    scale = np.iinfo(image.dtype).max if image.dtype.kind in "ui" else 1.0
    return image.astype(np.float32) / np.float32(scale)


def check_writable(path, overwrite=True):
    """ValueError unless ``path`` names a format this module writes (no extension: PNG);
    FileExistsError where it exists and not ``overwrite``. Commands call it before their
    work, so that a refusal does not come after minutes of it."""
    extension = os.path.splitext(path)[1].lower()
    if extension and extension not in IMAGE_EXTENSIONS:
        raise ValueError(f"{path}: cannot write {extension} images; use one of "
                         f"{', '.join(IMAGE_EXTENSIONS)}")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")


def write_image_file(path, image, overwrite=False, icc_profile=None):
    """Writes ``image`` (uint8/uint16, or float in [0, 1]: float32 to a TIFF, 8-bit to
    other formats) to ``path`` through a temporary file and an atomic rename; refuses to
    replace a file unless ``overwrite``. 16-bit images stay 16-bit in PNG and TIFF; other
    formats hold 8 bits, and get the image rounded to 8 bits. JPEG and BMP hold no alpha:
    that of an ``[H, W, 2|4]`` image is dropped. Both are logged. WebP is written lossless
    and holds colour only: a gray image goes in as RGB. ``icc_profile`` (bytes, see
    :func:`read_icc_profile`) is embedded in PNG, JPEG, WebP and TIFF (BMP holds none)."""
    check_writable(path, overwrite)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"output folder {directory} does not exist")
    image = np.asarray(image)
    extension = (os.path.splitext(path)[1] or ".png").lower()
    if image.dtype.kind == "f":
        image = np.clip(image, 0.0, 1.0)
        image = (image.astype(np.float32) if extension in TIFF_EXTENSIONS
                 else np.round(image * 255.0).astype(np.uint8))
    if image.dtype not in (np.uint8, np.uint16, np.float32):
        raise ValueError(f"{path}: cannot write an image of dtype {image.dtype}; uint8, uint16 "
                         f"or float in [0, 1]")
    if image.dtype == np.uint16 and extension not in SIXTEEN_BIT_EXTENSIONS:
        logger.warning("%s: %s images hold 8 bits per channel; the 16-bit result is written "
                       "as 8-bit (write a .png or .tif to keep 16 bits)", path, extension)
        image = np.round(image / 257.0).astype(np.uint8)
    if extension in NO_ALPHA_EXTENSIONS and split_alpha(image)[1] is not None:
        logger.warning("%s: %s images hold no alpha channel; it is dropped", path, extension)
        image = split_alpha(image)[0]
    if extension == ".webp" and (image.ndim == 2 or image.shape[-1] < 3):
        colour, alpha = split_alpha(image)
        image = join_alpha(np.repeat(colour.reshape(colour.shape[:2] + (1,)), 3, axis=-1), alpha)
    if icc_profile is not None:
        icc_profile = _fitting_profile(path, image, icc_profile)
    data = _encoded(image, extension, icc_profile)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.partial")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _fitting_profile(path, image, icc_profile):
    """``icc_profile`` if its colour space (header bytes 16-19) is the image's, gray or RGB;
    else None, logged (e.g. a CMYK JPEG's profile, the image now RGB)."""
    colour = image.ndim == 3 and image.shape[-1] >= 3
    space = bytes(icc_profile[16:20])
    if space == (b"RGB " if colour else b"GRAY"):
        return icc_profile
    logger.warning("%s: the input's colour profile (%s) does not fit a %s image; written "
                   "without one", path, space.decode("latin-1").strip() or "unknown",
                   "colour" if colour else "gray")
    return None


def _encoded(image, extension, icc_profile=None):
    """The file contents of ``image`` (uint8, uint16 or float32) in the format of
    ``extension``, with ``icc_profile`` embedded where the format holds one."""
    if extension == ".png":  # Pillow cannot write 16-bit colour PNGs; TensorFlow can
        import tensorflow as tf

        data = tf.io.encode_png(image[..., None] if image.ndim == 2 else image).numpy()
        return data if icc_profile is None else _with_png_iccp(data, icc_profile)
    import imageio.v3 as iio

    options = {}
    if extension in (".jpg", ".jpeg"):
        # JPEG is lossy: write it at high quality (imageio's default, 75, adds visible blocks).
        options = {"quality": JPEG_QUALITY, "icc_profile": icc_profile}
    elif extension in TIFF_EXTENSIONS and icc_profile is not None:
        options = {"iccprofile": icc_profile}
    elif extension == ".webp":
        # Lossless, and exact: the colour under transparent pixels is kept too.
        options = {"lossless": True, "exact": True, "icc_profile": icc_profile}
    return iio.imwrite("<bytes>", image, extension=extension, **options)


def _with_png_iccp(data, icc_profile):
    """PNG bytes with an iCCP chunk (the profile, zlib-compressed) right after IHDR."""
    import zlib

    body = b"ICC profile\0\0" + zlib.compress(icc_profile)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body
    chunk += struct.pack(">I", zlib.crc32(b"iCCP" + body) & 0xFFFFFFFF)
    end_of_ihdr = len(PNG_SIGNATURE) + 4 + 4 + 13 + 4  # length, type, 13 bytes, CRC
    return data[:end_of_ihdr] + chunk + data[end_of_ihdr:]
