import numpy as np
import pytest
import skimage.data
import skimage.metrics

from deepam_tf import metrics


def test_metrics_match_their_definitions():
    rng = np.random.default_rng(0)
    clean = skimage.data.camera()[:64, :64] / 255.0
    noisy = clean + rng.normal(0, 0.1, clean.shape)
    assert metrics.psnr(clean, noisy) == pytest.approx(
        skimage.metrics.peak_signal_noise_ratio(clean, noisy, data_range=1.0), abs=1e-9)
    assert metrics.psnr(clean, clean) == float("inf")
    assert metrics.rmse(clean * 255, noisy * 255) == pytest.approx(np.sqrt(np.mean((clean - noisy) ** 2)) * 255)
    depth = np.zeros((4, 5))
    estimate = depth.copy()
    estimate[0, :3] = [3.0, 3.5, -4.0]  # an error of exactly the threshold is not bad
    assert metrics.bad_matching_percentage(depth, estimate, 3.0) == pytest.approx(100 * 2 / 20)


@pytest.mark.parametrize("metric", [metrics.psnr, metrics.ssim, metrics.rmse, metrics.bad_matching_percentage])
@pytest.mark.parametrize("shapes", [((16, 16), (16, 16, 1)), ((16, 16), (8, 16)), ((16, 16, 3), (16, 16, 1))])
def test_images_of_two_shapes_are_refused_not_broadcast(metric, shapes):
    # [H, W] against [H, W, 1] would broadcast to [H, H, W] and give a wrong number.
    reference, estimate = (np.full(shape, 0.5) for shape in shapes)
    with pytest.raises(ValueError, match=rf"the same shape, got \({shapes[0][0]}, .*\) and \({shapes[1][0]}, "):
        metric(reference, estimate)
    with pytest.raises(ValueError, match="are empty"):
        metric(np.zeros((0, 4)), np.zeros((0, 4)))
