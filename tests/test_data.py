import os

import imageio.v3 as iio
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from deepam_tf import data


@pytest.fixture
def folder(tmp_path):
    camera = skimage.data.camera()
    iio.imwrite(tmp_path / "a.png", camera[:64, :80])
    iio.imwrite(tmp_path / "b16.png", camera[100:140, :50].astype(np.uint16) * 257)
    iio.imwrite(tmp_path / "c.tif", camera[200:240, 200:260])
    iio.imwrite(tmp_path / "d.jpg", skimage.data.astronaut()[:48, :48])
    iio.imwrite(tmp_path / "e.webp", camera[300:340, 300:350], lossless=True)
    (tmp_path / "notes.txt").write_text("ignored")
    return tmp_path


def test_reads_8_and_16_bit_png_tiff_jpeg_and_webp(folder):
    files = data.list_images(str(folder))
    assert [os.path.basename(f) for f in files] == ["a.png", "b16.png", "c.tif", "d.jpg", "e.webp"]
    images = [s["image"].numpy() for s in data.image_dataset(files)]
    camera = skimage.data.camera() / 255.0
    np.testing.assert_allclose(images[0][..., 0], camera[:64, :80], atol=1e-6)
    np.testing.assert_allclose(images[1][..., 0], camera[100:140, :50], atol=1e-6)
    np.testing.assert_allclose(images[2][..., 0], camera[200:240, 200:260], atol=1e-6)
    assert images[3].shape == (48, 48, 1)
    np.testing.assert_allclose(images[4][..., 0], camera[300:340, 300:350], atol=1e-3)  # RGB to luma


def test_patches_are_degraded_augmented_crops(folder):
    files = data.list_images(str(folder))[:1]
    noise = data.GaussianNoise(sigma_range=(10, 50), noise_level_input=True)
    batches = data.patch_dataset(data.image_dataset(files), noise, patch_size=16, batch_size=8)
    inputs, clean = next(iter(batches))
    assert inputs["image"].shape == clean.shape == (8, 16, 16, 1)
    levels = inputs["noise_level"].numpy().ravel() * 255
    assert np.all((levels >= 10) & (levels <= 50)) and np.ptp(levels) > 1
    residual_std = np.std(inputs["image"].numpy() - clean.numpy(), axis=(1, 2, 3)) * 255
    np.testing.assert_allclose(residual_std, levels, rtol=0.3)
    # Every clean patch is one of the 8 dihedral transforms of a crop of the image.
    image = skimage.data.camera()[:64, :80] / 255.0
    for patch in clean.numpy()[..., 0]:
        found = False
        for k in range(4):
            for p in (np.rot90(patch, -k), np.fliplr(np.rot90(patch, -k))):
                hits = np.argwhere(np.abs(image[:49, :65] - p[0, 0]) < 1e-6)
                found |= any(np.allclose(image[i:i + 16, j:j + 16], p, atol=1e-6) for i, j in hits)
        assert found


def test_stream_is_reproducible_from_the_seed(folder):
    files = data.list_images(str(folder))
    make = lambda seed: data.patch_dataset(  # noqa: E731
        data.image_dataset(files), data.GaussianNoise(sigma=25), batch_size=4, seed=seed
    )
    a, b, c = (next(iter(make(s)))[0].numpy() for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0


def test_rescaled_patches_are_crops_of_the_resized_image():
    # A 64x64 image at scale 0.5 is 32x32: a 32x32 patch of it is the whole resized image,
    # which a constant image leaves constant and a ramp leaves a (smoother) ramp.
    ramp = np.tile(np.linspace(0.1, 0.9, 64, dtype=np.float32), (64, 1))[:, :, None]
    resized = data.rescale(tf.constant(ramp), 0.5).numpy()
    assert resized.shape == (32, 32, 1)
    assert np.all(np.diff(resized[0, :, 0]) > 0) and 0 <= resized.min() and resized.max() <= 1
    assert data.rescale(tf.constant(ramp[:45, :45]), 0.7).shape == (32, 32, 1)  # ceil(31.5)
    assert np.allclose(data.rescale(tf.fill([50, 40, 1], 0.25), 0.8).numpy(), 0.25, atol=1e-6)
    samples = tf.data.Dataset.from_tensors({"image": tf.constant(ramp)})
    noise = data.GaussianNoise(sigma=25)
    batches = data.patch_dataset(samples, noise, patch_size=32, batch_size=4, augmentation=False,
                                 scales=[0.5])
    _, clean = next(iter(batches))
    np.testing.assert_allclose(clean.numpy(), np.repeat(resized[None], 4, axis=0), atol=1e-6)
    # With 1 among the scales, some patches are plain crops (steps of 0.8/63 per pixel)
    # and others resized ones (twice that).
    batches = data.patch_dataset(samples, noise, patch_size=32, batch_size=16, augmentation=False,
                                 scales=[1, 0.5])
    steps = np.diff(next(iter(batches))[1].numpy()[:, 16, 8:24, 0], axis=1).mean(axis=1) * 63 / 0.8
    assert np.any(np.abs(steps - 1) < 0.05) and np.any(np.abs(steps - 2) < 0.1)


@pytest.mark.parametrize("scales", [[], [0], [1.5], ["0.9"], 0.9, [True]])
def test_bad_scales_are_refused(scales):
    samples = tf.data.Dataset.from_tensors({"image": tf.zeros([64, 64, 1])})
    with pytest.raises(ValueError, match=r"scales must be a non-empty list of factors in \(0, 1\]"):
        data.patch_dataset(samples, data.GaussianNoise(sigma=25), scales=scales)


def test_scales_are_refused_with_a_prepared_degradation():
    samples = tf.data.Dataset.from_tensors({"image": tf.zeros([64, 64, 1]), "guidance": tf.zeros([64, 64, 3])})
    with pytest.raises(ValueError, match="scales cannot be used .*DepthDownsampling"):
        data.patch_dataset(samples, data.DepthDownsampling(4), scales=[1, 0.8])


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        data.list_images(str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        data.list_images(str(tmp_path / "missing"))
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match="a.png is a file"):
        data.list_images(str(tmp_path / "a.png"))
    with pytest.raises(ValueError, match="exactly one"):
        data.GaussianNoise()
    with pytest.raises(ValueError, match="sigma"):
        data.GaussianNoise(sigma=-5)


def test_tfds_builder_reads_manual_dir(tmp_path):
    import tensorflow_datasets as tfds

    import deepam_tf.data.tfds_builders  # noqa: F401

    manual = tmp_path / "manual" / "set12"
    manual.mkdir(parents=True)
    for i in range(2):
        iio.imwrite(manual / f"{i:02d}.png", skimage.data.camera()[: 20 + i, :30])
    astronaut = skimage.data.astronaut()[:24, :30]
    iio.imwrite(manual / "02.png", astronaut)  # colour: its luma, as the evaluation reads it
    ds = tfds.load(
        "deepam_denoise/set12",
        split="test",
        data_dir=str(tmp_path / "tfds"),
        download_and_prepare_kwargs={
            "download_config": tfds.download.DownloadConfig(manual_dir=str(tmp_path / "manual"))
        },
    )
    names = sorted(ex["file_name"].numpy().decode() for ex in ds)
    assert names == ["00.png", "01.png", "02.png"]
    sample = next(iter(data.tfds_image_dataset(ds)))["image"]
    assert sample.dtype == tf.float32 and float(tf.reduce_max(sample)) <= 1.0
    colour = next(ex["image"].numpy() for ex in ds if ex["file_name"].numpy() == b"02.png")
    from deepam_tf.evaluation import read_gray

    np.testing.assert_allclose(colour[..., 0] / 255.0, read_gray(str(manual / "02.png")), atol=0.5 / 255)


@pytest.mark.parametrize("channels", [1, 3])
def test_every_lossless_layout_is_read_with_one_gray_and_one_colour_rule(tmp_path, channels):
    from deepam_tf.image_io import rgb_to_gray, write_image_file

    rgb = skimage.data.astronaut()[:24, :32]
    gray = skimage.data.camera()[:24, :32]
    alpha = np.full((24, 32), 200, np.uint8)
    cases = {"gray": gray, "gray+alpha": np.dstack([gray, alpha]), "rgb": rgb,
             "rgba": np.dstack([rgb, alpha])}
    paths, expected = [], []
    for name, image in cases.items():
        colour = image[..., :3] if image.ndim == 3 and image.shape[-1] >= 3 else image[..., :1] \
            if image.ndim == 3 else image[..., None]
        unit = colour / 255.0
        want = (rgb_to_gray(unit.astype(np.float32))[..., None] if unit.shape[-1] == 3 else unit) \
            if channels == 1 else np.broadcast_to(unit, (24, 32, 3))
        for extension, dtype in [(".png", np.uint8), (".png", np.uint16), (".tif", np.uint16),
                                 (".bmp", np.uint8)]:
            if extension == ".bmp" and name == "gray+alpha":
                continue  # BMP holds no gray+alpha
            path = str(tmp_path / f"{name}_{np.dtype(dtype).name}{extension}")
            write_image_file(path, image.astype(dtype) * (257 if dtype == np.uint16 else 1))
            paths.append(path)
            expected.append(want)
    write_image_file(str(tmp_path / "float.tif"), (gray / 255.0).astype(np.float32))
    paths.append(str(tmp_path / "float.tif"))
    expected.append(gray[..., None] / 255.0 if channels == 1 else np.dstack([gray / 255.0] * 3))
    for path, want in zip(paths, expected):  # eagerly (as refit-head reads) ...
        np.testing.assert_allclose(data.read_image(path, channels).numpy(), want, atol=1e-6,
                                   err_msg=path)
    for sample, want in zip(data.image_dataset(paths, channels), expected):  # ... and in tf.data
        np.testing.assert_allclose(sample["image"].numpy(), want, atol=1e-6)


def test_phone_photos_are_read_upright_as_image_io_reads_them(tmp_path):
    # TensorFlow's decoders ignore the EXIF orientation; deepam denoise applies it. A
    # rotated image paired with an upright guidance must come out aligned.
    from PIL import Image

    from deepam_tf.data.pipelines import decoded_in_python
    from deepam_tf.image_io import EXIF_ORIENTATION, read_image_file

    rgb = skimage.data.astronaut()[:40:2, :64:2]  # 20x32: rotated, it is 32x20
    paths = []
    for orientation, extension in [(6, ".png"), (8, ".jpg"), (1, ".png")]:
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = orientation
        paths.append(str(tmp_path / f"o{orientation}{extension}"))
        Image.fromarray(rgb).save(paths[-1], exif=exif.tobytes(), quality=95)
    assert [decoded_in_python(path) for path in paths] == [True, True, False]
    wanted = [read_image_file(path) / 255.0 for path in paths]
    assert [w.shape[:2] for w in wanted] == [(32, 20), (32, 20), (20, 32)]
    for path, want in zip(paths, wanted):
        np.testing.assert_allclose(data.read_image(path, 3).numpy(), want, atol=1e-6)
    for sample, want in zip(data.image_dataset(paths, 3), wanted):
        np.testing.assert_allclose(sample["image"].numpy(), want, atol=1e-6)
    guidance = str(tmp_path / "guidance.png")  # stored as the rotated image is shown
    iio.imwrite(guidance, (wanted[0][..., 0] * 255).round().astype(np.uint8))
    (pair,) = data.paired_dataset([(paths[0], guidance)], 3, 1)
    np.testing.assert_allclose(pair["image"].numpy(), wanted[0], atol=1e-6)
    np.testing.assert_allclose(pair["guidance"].numpy()[..., 0], wanted[0][..., 0], atol=0.5 / 255)
