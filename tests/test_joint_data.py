import imageio.v3 as iio
import numpy as np
import pytest
import skimage.data
import skimage.transform
import tensorflow as tf

from deepam_tf import baselines, data, train
from deepam_tf.data import splits


def test_bilinear_upsampling_keeps_the_samples_and_is_linear_between():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (40, 48, 1)).astype(np.float32)
    for scale in (2, 4, 8):
        low = np.asarray(data.downsample_nearest(image, scale))
        up = np.asarray(data.upsample_bilinear(low, scale))
        assert up.shape == (40 // scale * scale, 48 // scale * scale, 1)
        np.testing.assert_array_equal(up[::scale, ::scale], low)
    # A plane is reproduced exactly up to the last sample (then held constant).
    y, x = np.mgrid[0:10, 0:12].astype(np.float32)
    plane = (0.3 * y + 0.1 * x)[..., None]
    up = np.asarray(data.upsample_bilinear(plane, 4))
    yy, xx = np.mgrid[0:40, 0:48] / 4.0
    np.testing.assert_allclose(up[:37, :45, 0], (0.3 * yy + 0.1 * xx)[:37, :45], atol=1e-5)
    np.testing.assert_allclose(up[37:, 0, 0], up[36, 0, 0], atol=1e-6)


def test_bicubic_keeps_samples_and_reproduces_quadratics():
    y, x = np.mgrid[0:12, 0:12].astype(np.float64)
    quad = 0.02 * y**2 - 0.03 * x * y + 0.5 * x
    up = baselines.bicubic_upsample(quad, 4)
    np.testing.assert_allclose(up[::4, ::4], quad, atol=1e-5)
    yy, xx = np.mgrid[0:48, 0:48] / 4.0
    truth = 0.02 * yy**2 - 0.03 * xx * yy + 0.5 * xx
    inner = (slice(4, 36), slice(4, 36))  # away from the clamped borders
    np.testing.assert_allclose(up[inner], truth[inner], atol=1e-4)


def test_box_mean_and_guided_filter():
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 1, (17, 23))
    naive = np.array([[image[max(i - 2, 0):i + 3, max(j - 2, 0):j + 3].mean() for j in range(23)]
                      for i in range(17)])
    np.testing.assert_allclose(baselines.box_mean(image, 2), naive, atol=1e-12)
    # Guide = source with a tiny eps preserves the image; a large eps smooths it.
    np.testing.assert_allclose(baselines.guided_filter(image, image, 2, 1e-8), image, atol=1e-4)
    smooth = baselines.guided_filter(image, image, 2, 10.0)
    assert np.std(smooth) < 0.5 * np.std(image)


def test_depth_degradation_uses_the_whole_image():
    depth = tf.constant(np.random.default_rng(2).uniform(0, 1, (64, 64, 1)), tf.float32)
    rgb = tf.zeros([64, 64, 3])
    degradation = data.DepthDownsampling(8)
    sample = degradation.prepare({"image": depth, "guidance": rgb})
    inputs, target = degradation(sample, tf.constant([0, 0], tf.int64))
    assert set(inputs) == {"image", "guidance"} and target is depth
    np.testing.assert_allclose(np.asarray(inputs["image"])[::8, ::8], np.asarray(depth)[::8, ::8])
    with pytest.raises(ValueError, match="scale"):
        data.DepthDownsampling(1)


def test_noise_keeps_the_guidance():
    sample = {"image": tf.zeros([8, 8, 3]), "guidance": tf.ones([8, 8, 1])}
    inputs, clean = data.GaussianNoise(25, noise_level_input=True)(sample, tf.constant([0, 1], tf.int64))
    assert set(inputs) == {"image", "guidance", "noise_level"}
    np.testing.assert_array_equal(inputs["guidance"], 1.0)


def _write_pair(folder, name, depth, rgb, depth_suffix="", rgb_suffix=""):
    (folder / "depth").mkdir(parents=True, exist_ok=True)
    (folder / "rgb").mkdir(parents=True, exist_ok=True)
    iio.imwrite(folder / "depth" / f"{name}{depth_suffix}.png", depth)
    iio.imwrite(folder / "rgb" / f"{name}{rgb_suffix}.png", rgb)


def test_pairs_match_by_name_and_report_orphans(tmp_path):
    rgb = skimage.data.astronaut()[:32, :32]
    _write_pair(tmp_path, "Middlebury_01", rgb[..., 0], rgb, "_output_depth", "_output_color")
    _write_pair(tmp_path, "RGBD_02", rgb[..., 1], rgb, "_output_depth", "_ouput_color")
    pairs = data.list_pairs(str(tmp_path))
    assert [data.pair_key(d) for d, _ in pairs] == ["Middlebury_01", "RGBD_02"]
    iio.imwrite(tmp_path / "rgb" / "lonely.png", rgb)
    with pytest.raises(ValueError, match="lonely"):
        data.list_pairs(str(tmp_path))


def test_training_scenes_that_match_test_scenes_are_removed(tmp_path):
    """A test scene hidden in the training set under another name, at a third of the
    resolution and mirrored, is found by content and left out; other scenes stay."""
    def scene(image):
        rgb = image[:192, :240]
        depth = (skimage.color.rgb2gray(rgb) * 200 + 20).astype(np.uint8)
        return depth, rgb

    test_depth, test_rgb = scene(skimage.data.astronaut())
    _write_pair(tmp_path / "depth_sr" / "middlebury10", "art", test_depth, test_rgb)
    small = lambda a: (skimage.transform.resize(a, (64, 80), anti_aliasing=True, preserve_range=True)
                       .astype(np.uint8))[:, ::-1]
    _write_pair(tmp_path / "depth_sr" / "middlebury30", "Middlebury_01", small(test_depth),
                small(test_rgb), "_output_depth", "_output_color")
    other_depth, other_rgb = scene(skimage.data.chelsea())
    _write_pair(tmp_path / "depth_sr" / "middlebury30", "Middlebury_02", other_depth, other_rgb,
                "_output_depth", "_output_color")
    coffee_depth, coffee_rgb = scene(skimage.data.coffee())
    _write_pair(tmp_path / "depth_sr" / "lu6", "RGBD_01", coffee_depth, coffee_rgb,
                "_output_depth", "_ouput_color")
    kept = [data.pair_key(d) for d, _ in splits.depth_train_pairs(str(tmp_path))]
    assert kept == ["Middlebury_02", "RGBD_01"]

    config = train.load_config("configs/depth_sr_x4.json")
    config["data"]["batch_size"] = 2
    inputs, target = next(iter(train.train_dataset(config, str(tmp_path))))
    assert inputs["image"].shape == (2, 64, 64, 1) and inputs["guidance"].shape == (2, 64, 64, 3)
    assert target.shape == (2, 64, 64, 1)


def test_check_pairs_names_an_unreadable_file_and_a_pair_of_two_sizes(tmp_path):
    iio.imwrite(tmp_path / "depth.png", skimage.data.camera()[:32, :40])
    iio.imwrite(tmp_path / "rgb.png", skimage.data.astronaut()[:32, :40])
    iio.imwrite(tmp_path / "rgb_small.png", skimage.data.astronaut()[:16, :40])
    (tmp_path / "broken.png").write_bytes(b"junk")
    data.check_pairs([(str(tmp_path / "depth.png"), str(tmp_path / "rgb.png"))], 1, 3)
    with pytest.raises(ValueError, match=r"depth.png is 32x40 but its guidance .*rgb_small.png is 16x40"):
        data.check_pairs([(str(tmp_path / "depth.png"), str(tmp_path / "rgb_small.png"))], 1, 3)
    with pytest.raises(ValueError, match=r"broken.png: not a readable image"):
        data.check_pairs([(str(tmp_path / "depth.png"), str(tmp_path / "broken.png"))], 1, 3)
