"""One-call restoration on numpy images: dtype, range and layout in, the same out."""

import collections
import functools
import logging
import os
import threading
import warnings
import weakref

import numpy as np

from deepam_tf import colour
from deepam_tf.image_io import join_alpha, split_alpha

logger = logging.getLogger("deepam_tf")

DEFAULT_DENOISER = "denoise_blind"  # the blind preset up to the top of its sigma_range
AUTO_MODEL = "auto"  # the fixed-σ preset of exactly the σ given, else blind_preset_for(σ)
DEFAULT_NIR_MODEL = "rgbnir_blind"  # the same for RGB/NIR restoration
# Each task's blind (any-σ) preset up to the top of its sigma_range.
BLIND_PRESETS = {"denoise": DEFAULT_DENOISER, "rgb_nir": DEFAULT_NIR_MODEL}
MAX_SIGMA = 255.0
MIN_ESTIMATED_SIGMA = 0.5  # a clean image estimates ~0: denoise it very lightly


def to_unit_range(image, name="image", sigma=None):
    """``(float32 array in [0, 1] nominally, restore)`` where ``restore`` maps a result
    back to the input's dtype and range. Accepts uint8, uint16 and floats in [0, 1]
    (noisy ones a little outside: :func:`deepam_tf.models.deepam.float_range_error`)."""
    image = np.asarray(image)
    if image.size == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    if image.dtype == np.uint8 or image.dtype == np.uint16:
        scale = float(np.iinfo(image.dtype).max)
        dtype = image.dtype
        top = image.max() if dtype == np.uint16 else None
        if top is not None and 0 < top <= 255:
            logger.warning("%s is uint16 with values at most %d, nearly black on the 16-bit "
                           "scale: an 8-bit image in a 16-bit array? Pass it as uint8 "
                           "(.astype(np.uint8))", name, top)

        def restore(result):
            return np.round(np.clip(result, 0.0, 1.0) * scale).astype(dtype)

        return image.astype(np.float32) / scale, restore
    if image.dtype.kind == "f":
        if not np.all(np.isfinite(image)):
            raise ValueError(f"{name} contains NaN or Inf")
        from deepam_tf.models.deepam import float_range_error

        error = float_range_error(name, float(image.min()), float(image.max()), (sigma or 0) / 255.0)
        if error:
            raise ValueError(f"{error}, or pass it as uint8")
        dtype = image.dtype

        def restore(result):
            return np.clip(result, 0.0, 1.0).astype(dtype)

        return image.astype(np.float32), restore
    raise ValueError(
        f"{name} must be uint8, uint16 or float in [0, 1], got dtype {image.dtype}; convert "
        f"integer images to uint8 (values 0-255) or uint16 (0-65535) first"
    )


def _layout(image, name="image"):
    """``[H, W] | [H, W, C]`` -> ``[C, H, W, 1]`` (channels as a batch) and back."""
    if image.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape [H, W] or [H, W, C], got {image.shape}")
    if image.ndim == 3 and image.shape[0] <= 4 < image.shape[2]:
        raise ValueError(f"{name} of shape {image.shape} looks channels-first ([C, H, W]); "
                         f"images are [H, W, C]: pass np.moveaxis({name}, 0, -1)")
    if min(image.shape[:2]) < 2:
        raise ValueError(f"{name} must be at least 2x2 pixels, got {image.shape}")
    if image.ndim == 2:
        return image[None, :, :, None], lambda batch: batch[0, :, :, 0]
    return np.moveaxis(image, -1, 0)[..., None], lambda batch: np.moveaxis(batch[..., 0], 0, -1)


def _wavelet_sigma(image, channel_axis=None):
    """skimage's wavelet MAD noise estimate (0–1 scale, averaged over channels). skimage
    leaves out detail coefficients that are exactly 0; a channel whose are all 0 (e.g. a
    constant one) has no measurable noise, 0 here (skimage: NaN, with numpy warnings)."""
    import skimage.restoration

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # skimage guesses that a gray image at most 4 pixels wide may be colour; it is not.
        warnings.filterwarnings("ignore", "image is size", UserWarning)
        sigmas = skimage.restoration.estimate_sigma(image, channel_axis=channel_axis,
                                                    average_sigmas=False)
    return float(np.mean(np.nan_to_num(np.atleast_1d(sigmas), nan=0.0)))


def estimate_sigma(image):
    """Noise level on the 0–255 scale of an ``[H, W]`` or ``[H, W, C]`` image (uint8,
    uint16 or float in [0, 1]), by the wavelet MAD estimate, floored at
    ``MIN_ESTIMATED_SIGMA`` (a clean image estimates about 0). The last channel of a 2-
    or 4-channel image is alpha, left out (as :func:`denoise` does)."""
    unit, _ = to_unit_range(split_alpha(np.asarray(image))[0])
    _layout(unit)
    return max(_wavelet_sigma(unit, -1 if unit.ndim == 3 else None) * 255.0, MIN_ESTIMATED_SIGMA)


def check_sigma(sigma):
    """``sigma`` as a float, or a ValueError unless it is one real number (a Python or
    numpy scalar, or a 0-d array or tensor) in (0, MAX_SIGMA]."""
    if not isinstance(sigma, (str, bytes)) and np.ndim(sigma) == 0 and np.asarray(sigma).dtype.kind in "iuf":
        sigma = np.asarray(sigma).item()
    real = isinstance(sigma, (int, float)) and not isinstance(sigma, bool)
    if not real or not np.isfinite(sigma) or not 0 < sigma <= MAX_SIGMA:
        raise ValueError(f"sigma must be a number in (0, {MAX_SIGMA:g}] on the 0-255 scale, got {sigma!r}")
    return float(sigma)


# What each one-call function needs of a model: image channels, guidance channels, and a
# preset that has them.
TASKS = {
    "denoising": (1, 0, DEFAULT_DENOISER),
    "depth super-resolution": (1, 3, "depth_x4"),
    "RGB/NIR restoration": (3, 1, DEFAULT_NIR_MODEL),
}


def check_task(model, task, label):
    """Returns the loaded ``model``, or raises ValueError naming it (``label``: the
    preset name or path the user gave) unless it has the inputs ``task`` (a key of
    ``TASKS``) feeds it, e.g. a depth model given to :func:`denoise`."""
    from deepam_tf.models import DeepAM

    if not isinstance(model, DeepAM):
        raise ValueError(f"model {label} is a {type(model).__name__}, not a deepam_tf DeepAM model")
    channels, guidance, example = TASKS[task]
    got = (model.channels, model.guidance_channels)
    if got != (channels, guidance):
        raise ValueError(
            f"model {label} takes {got[0]} image and {got[1]} guidance channel(s); "
            f"{task} needs {channels} and {guidance} (e.g. preset {example})"
        )
    return model


def run_denoiser(model, batch, sigma, tile_size="auto", self_ensemble=False):
    """The model on ``[B, H, W, 1]`` float32 with noise level σ (0–255 scale; one for
    the batch or one per image), tiled exactly (see
    :func:`deepam_tf.models.tiling.tiled_predict`); ``tile_size=None`` runs the whole
    image at once."""
    inputs = np.asarray(batch, np.float32)
    if getattr(model, "noise_level_input", False):
        level = np.asarray(sigma, np.float32).reshape(-1, 1) / 255.0
        inputs = {"image": inputs, "noise_level": np.broadcast_to(level, (inputs.shape[0], 1))}
    return model.predict(inputs, verbose=0, tile_size=tile_size, self_ensemble=self_ensemble)


COLOUR_SPACES = ("auto", "opponent", "rgb")
# "auto" takes the opponent channels when the noise is independent across R, G and B: the
# chroma channels' estimated noise, per unit of RGB σ, is then about the RGB estimate
# (measured 0.62-1.01 for Gaussian noise of σ >= 5), while JPEG's chroma subsampling
# leaves almost none in them (0.03-0.47), and there the opponent channels lose up to 4.6 dB.
INDEPENDENT_NOISE_RATIO = 0.5


def chroma_noise_ratio(rgb):
    """The opponent chroma channels' estimated noise level (per unit of RGB σ) over the RGB
    estimate, for a ``[H, W, 3]`` image in [0, 1]: about 1 when the noise is independent
    across channels, near 0 after JPEG's chroma subsampling."""
    opponent = colour.to_opponent(rgb)
    chroma = np.mean([_wavelet_sigma(opponent[..., k]) / colour.NOISE_SCALE[k] for k in (1, 2)])
    overall = _wavelet_sigma(rgb, -1)
    return float(chroma / overall) if overall > 0 else 0.0


def denoise(image, sigma=None, model=AUTO_MODEL, tile_size="auto", self_ensemble=False,
            colour_space="auto", precision=None, alpha=True):
    """Removes Gaussian noise of level ``sigma`` with a DeepAM denoiser.

    Args:
        image: numpy array, ``[H, W]`` or ``[H, W, C]``; uint8, uint16, or float nominally
            in [0, 1] (noisy floats slightly outside it are fine). Channels are denoised
            one by one with the grayscale model: an RGB image's opponent channels (see
            ``colour_space``), any other image's own channels. The last channel of a
            2- or 4-channel image is alpha (see ``alpha``).
        sigma: noise standard deviation on the 0–255 scale whatever the dtype; ``None``
            takes a fixed-σ preset's σ (``"denoise_sigma25"``) or estimates it (logged
            on the ``deepam_tf`` logger).
        model: preset name, ``.keras`` path or a loaded :class:`DeepAM`; ``"auto"``
            takes the fixed-σ preset trained for exactly ``sigma`` (``denoise_sigma15``,
            ``_25``, ``_50``: up to 0.024 dB better there) when every channel is denoised at
            that σ, else the blind preset for the σ (:func:`blind_preset_for`:
            ``denoise_blind`` to 55, ``denoise_high_sigma`` above; logged).
        tile_size: CNN tile side in pixels, ``"auto"`` (from the available memory) or
            ``None`` (whole image at once). Tiling is exact: the result does not change.
        self_ensemble: average the model over the 8 rotations and flips of the input
            (8× the time; see :mod:`deepam_tf.models.ensemble`).
        colour_space: for 3-channel images and a noise-level-conditioned model,
            ``"opponent"`` denoises the orthonormal opponent channels, each at its own
            noise level (:mod:`deepam_tf.colour`; about 1.1 dB better than ``"rgb"``,
            which denoises R, G and B, when the noise is independent across channels,
            but up to 4.6 dB worse on noisy JPEGs, whose chroma noise was removed);
            ``"auto"`` picks by :func:`chroma_noise_ratio` (logged).
        precision: ``"bfloat16"`` runs the networks in mixed bfloat16 (the
            reconstruction stays float32): 1.5× faster on CPUs with AVX512-BF16 or AMX and
            on recent GPUs at the same mean PSNR (``benchmarks/precision.py``), slower
            where bfloat16 is emulated (a warning says so); ``"float32"``, or ``None``
            for the model as stored (float32 for the shipped presets).
        alpha: ``True`` takes a 2- or 4-channel image as gray or RGB plus alpha (as
            Pillow and imageio read PNGs with transparency): the alpha channel comes back
            unchanged and the rest is denoised as a gray or RGB image. ``False`` denoises
            every channel as an image of its own.

    Returns:
        The restored image, same shape and dtype, range [0, 1] for floats.

    Example:
        >>> restored = denoise(skimage.data.astronaut(), 25)  # doctest: +SKIP
    """
    if colour_space not in COLOUR_SPACES:
        raise ValueError(f"colour_space must be one of {COLOUR_SPACES}, got {colour_space!r}")
    if alpha:
        image, alpha_channel = split_alpha(np.asarray(image))
        if alpha_channel is not None:
            restored = denoise(image, sigma, model, tile_size, self_ensemble, colour_space,
                               precision, alpha=False)
            return join_alpha(restored, alpha_channel)
    from deepam_tf.models.tiling import check_memory

    auto = isinstance(model, str) and model == AUTO_MODEL
    model = resolve_denoiser(model, sigma)
    name = model if isinstance(model, str) else None  # a preset's index entry, if any
    sigma = given_sigma(sigma, model)
    model = load_for_task(model, "denoising", precision)
    shape = np.shape(image)
    if len(shape) in (2, 3):
        check_memory(model, shape[2] if len(shape) == 3 else 1, shape[0], shape[1])
    unit, back = to_unit_range(image, sigma=sigma)
    batch, unbatch = _layout(unit)
    _warn_if_unit_scale(unit, sigma)
    if sigma is None:
        sigma = _estimated_sigma(unit)
        if auto:  # an estimate is no specialist's exact σ
            name, model = _load_blind(sigma, precision, f"the estimated sigma {sigma:.4g}")
    rgb_image = unit.ndim == 3 and unit.shape[-1] == 3 and model.noise_level_input
    if rgb_image and colour_space == "auto":
        ratio = chroma_noise_ratio(unit)
        colour_space = "opponent" if ratio >= INDEPENDENT_NOISE_RATIO else "rgb"
        logger.info("colour space %s (chroma noise ratio %.2f)", colour_space, ratio)
    if rgb_image and colour_space == "opponent":
        level = opponent_level(sigma)
        if auto:  # the opponent channels each have their own σ: a blind model serves all
            name, model = _load_blind(level, precision, "the opponent channels")
        warn_outside_training_range(name, level, f"sigma {sigma:.4g} ({level:.4g} in the "
                                                 f"noisiest opponent channel)")
        batch, _ = _layout(colour.to_opponent(unit))
        restored = run_denoiser(model, batch, sigma * colour.NOISE_SCALE, tile_size, self_ensemble)
        return back(colour.from_opponent(unbatch(restored)))
    warn_outside_training_range(name, sigma)
    return back(unbatch(run_denoiser(model, batch, sigma, tile_size, self_ensemble)))


def opponent_level(sigma):
    """The σ of the noisiest opponent channel of RGB noise of level ``sigma``: what picks
    the blind preset for an RGB image under ``model="auto"``."""
    return float(sigma * colour.NOISE_SCALE.max())


@functools.cache
def warn_outside_training_range(name, sigma, given=None):
    """Logs (once per preset and σ) a σ above the noise levels the preset ``name`` was
    trained on (its index's ``sigma_range``): past them its quality falls off (README,
    "Noise above the trained range"). ``given``: the σ as the caller gave it, in words."""
    from deepam_tf.models import list_presets

    bounds = list_presets().get(name, {}).get("sigma_range") if name else None
    if bounds and sigma > bounds[1]:
        logger.warning("%s is above the noise levels %s was trained on (%g-%g): its quality "
                       "falls off past them (README, Noise above the trained range)",
                       given or f"sigma {sigma:.4g}", name, *bounds)


def given_sigma(sigma, model):
    """``sigma`` checked, or the σ of a fixed-σ preset (``"denoise_sigma25"``) when
    ``sigma`` is None; None when neither gives one (the caller then estimates it from the
    image). A σ other than the one a specialised preset was trained for is logged."""
    meta = {}
    if isinstance(model, str):
        from deepam_tf.models import list_presets

        meta = list_presets().get(model, {})
    if sigma is None:
        sigma = meta.get("sigma")
    elif "specialised_from" in meta and check_sigma(sigma) != meta["sigma"]:
        logger.warning("%s was trained for sigma %g only, and sigma %g was given; %s serves "
                       "any sigma", model, meta["sigma"], sigma, meta["specialised_from"])
    return None if sigma is None else check_sigma(sigma)


def resolve_denoiser(model, sigma):
    """``model``, or for :data:`AUTO_MODEL` the preset it stands for at ``sigma``:
    :func:`denoiser_for` a σ the caller gives, :data:`DEFAULT_DENOISER` for ``None`` (a σ
    to be estimated from the image, or the opponent channels' own σ)."""
    if not (isinstance(model, str) and model == AUTO_MODEL):
        return model
    return DEFAULT_DENOISER if sigma is None else denoiser_for(check_sigma(sigma))


def denoiser_for(sigma):
    """The preset ``model="auto"`` takes for a σ given by the caller: the shipped preset
    specialised to exactly that σ, or :func:`blind_preset_for` it (logged). An
    estimated σ and the opponent channels of an RGB image take a blind one."""
    name = next((name for level, name in specialist_presets() if level == sigma), None) or blind_preset_for(sigma)
    logger.info("model %s for sigma %g", name, sigma)
    return name


def specialist_presets(task="denoise"):
    """``[(sigma, name), ...]``, σ ascending: the shipped presets of ``task`` specialised
    to one σ, which ``model="auto"`` takes for exactly that σ given by the caller."""
    from deepam_tf.models import list_presets

    return sorted((meta["sigma"], name) for name, meta in list_presets().items()
                  if "specialised_from" in meta and meta.get("task") == task)


def blind_preset_for(sigma, task="denoise"):
    """The shipped blind (any-σ) preset of ``task`` (a key of :data:`BLIND_PRESETS`) for
    noise level ``sigma``: the task's default up to the top of its training range
    (``sigma_range``), above it the one whose range holds ``sigma``
    (``denoise_high_sigma``, ``rgbnir_high_sigma``), and past every range the one trained
    on the highest levels."""
    from deepam_tf.models import list_presets

    ranges = {name: meta["sigma_range"] for name, meta in sorted(list_presets().items())
              if meta.get("task") == task and "sigma_range" in meta
              and "sigma" not in meta and "alias_of" not in meta}
    default = BLIND_PRESETS[task]
    if sigma <= ranges[default][1]:
        return default
    holding = [name for name, (low, high) in ranges.items() if low <= sigma <= high]
    return holding[0] if holding else max(ranges, key=lambda name: ranges[name][1])


def blind_routes(task="denoise"):
    """:func:`blind_preset_for` as bands: ``[(top, name), ...]``, ``top`` ascending, the
    last :data:`MAX_SIGMA`; ``name`` serves σ in (previous ``top``, ``top``]. What a routed
    SavedModel (``deepam export auto``) is made of."""
    from deepam_tf.models import list_presets

    tops = {meta["sigma_range"][1] for meta in list_presets().values()
            if meta.get("task") == task and "sigma_range" in meta}
    routes = []
    for top in sorted(t for t in tops | {MAX_SIGMA} if t <= MAX_SIGMA):
        name = blind_preset_for(top, task)
        if routes and routes[-1][1] == name:
            routes[-1] = (top, name)
        else:
            routes.append((top, name))
    routes[-1] = (MAX_SIGMA, routes[-1][1])
    return routes


def _load_blind(sigma, precision, what):
    """``(name, model)`` of :func:`blind_preset_for` ``sigma``, loaded; logged with
    ``what`` it serves."""
    name = blind_preset_for(sigma)
    logger.info("model %s for %s", name, what)
    return name, load_for_task(name, "denoising", precision)


def _warn_if_unit_scale(unit, sigma):
    """Logs a warning when ``sigma`` (given, below 1) looks given on the image's [0, 1]
    scale, as scikit-image's denoisers take it, while the image's noise measures far more
    on the 0–255 scale: the image would come back barely denoised."""
    if sigma is None or sigma >= 1:
        return
    measured = estimate_sigma(unit)
    if measured >= 2 and measured > 20 * sigma:
        logger.warning("sigma %g is on the 0-255 scale, but the image's noise measures about "
                       "%.3g there; for sigma %g on the [0, 1] scale pass %.3g", sigma,
                       measured, sigma, sigma * 255)


def _estimated_sigma(unit):
    """σ estimated from a [0, 1] image (0–255 scale, floored), logged."""
    sigma = check_sigma(estimate_sigma(unit))
    logger.info("estimated sigma %.2f (0-255 scale)", sigma)
    return sigma


_LOADED = collections.OrderedDict()
_CONVERTED = weakref.WeakKeyDictionary()
_LOADING = threading.Lock()  # guards _LOADED, _CONVERTED and _LOAD_LOCKS
_LOAD_LOCKS = {}  # a lock per model being loaded: one load each, others in parallel
MAX_LOADED = 4  # models kept by the one-call APIs, least recently used dropped first


# The one-call APIs' precision names and the Keras dtype policies they run in.
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


@functools.cache
def _warn_if_bfloat16_emulated():
    """Logs, once per process, when bfloat16 runs emulated here (slower than float32);
    the hardware is probed only on the first call."""
    from deepam_tf.hardware import native_bfloat16

    if not native_bfloat16():
        logger.warning("bfloat16 is emulated on this machine (no GPU or CPU bfloat16 "
                       "instructions): it runs slower than float32")


def load_for_task(model, task, precision=None):
    """A preset name, ``.keras`` path or loaded model, loaded once per process, in
    ``precision`` (a key of :data:`PRECISIONS`; ``None``: as stored), and checked by
    :func:`check_task`."""
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} or None, got {precision!r}")
    if precision == "bfloat16":
        _warn_if_bfloat16_emulated()
    label = model if isinstance(model, str) else f"{type(model).__name__} {model.name!r}"
    policy = None if precision is None else PRECISIONS[precision]
    return check_task(_load(model, policy), task, label)


def _load(model, policy=None):
    """A preset name or ``.keras`` path as a model in dtype policy ``policy`` (``None``:
    as stored), loaded once per process (aliases of one preset share it; a path is
    reloaded when its file changes), so repeated calls reuse the model and its traces.
    At most ``MAX_LOADED`` are kept. A loaded model is converted (a copy) if needed."""
    from deepam_tf.models import list_presets, load_preset
    from deepam_tf.models.presets import with_dtype

    if not isinstance(model, str):
        if policy is None or not hasattr(model, "policy") or model.policy.name == policy:
            return model
        # A copy per loaded model and policy, kept (with its traces) while the model
        # lives; its weights are refreshed each call, so training in between is seen.
        with _LOADING:
            copies = _CONVERTED.setdefault(model, {})
            if policy not in copies:
                copies[policy] = with_dtype(model, policy)
            else:
                copies[policy].set_weights(model.get_weights())
            return copies[policy]
    if os.path.isfile(model):
        key = (model, os.path.getmtime(model), policy)
    else:
        key = (list_presets().get(model, {}).get("file", model), None, policy)
    # Threads of a server: each model loaded once, two models at once, the cache kept
    # consistent.
    with _LOADING:
        if key in _LOADED:
            return _recently_used(key)
        lock = _LOAD_LOCKS.setdefault(key, threading.Lock())
    with lock:
        with _LOADING:
            if key in _LOADED:  # loaded by the thread this one waited for
                return _recently_used(key)
        try:
            loaded = load_preset(model, policy)
            with _LOADING:
                _LOADED[key] = loaded
                while len(_LOADED) > MAX_LOADED:
                    _LOADED.popitem(last=False)
            return loaded
        finally:  # loaded or failed, the load's lock goes
            with _LOADING:
                _LOAD_LOCKS.pop(key, None)


def _recently_used(key):
    """The loaded model under ``key``, marked most recently used (under ``_LOADING``)."""
    _LOADED.move_to_end(key)
    return _LOADED[key]


def _same_size(a, b, names):
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same height and width, got "
            f"{a.shape[:2]} and {b.shape[:2]}"
        )


def _channels(image, channels, name):
    """``[H, W]`` / ``[H, W, C]`` -> ``[H, W, channels]``, or a ValueError."""
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] != channels:
        raise ValueError(f"{name} must have shape [H, W, {channels}]"
                         + (" or [H, W]" if channels == 1 else "") + f", got {image.shape}")
    if min(image.shape[:2]) < 2:
        raise ValueError(f"{name} must be at least 2x2 pixels, got {image.shape}")
    return image


def fill_holes(depth):
    """Zeros (missing depth) replaced by the nearest valid value; ValueError if all zero."""
    from scipy import ndimage

    holes = depth == 0
    if not holes.any():
        return depth
    if holes.all():
        raise ValueError("depth has no valid (non-zero) pixel")
    index = ndimage.distance_transform_edt(holes, return_distances=False, return_indices=True)
    return depth[tuple(index)]


def upsample_depth(depth_lr, rgb, scale, model=None, tile_size="auto", self_ensemble=False,
                   precision=None):
    """RGB-guided depth super-resolution with a DeepAM depth preset.

    Args:
        depth_lr: low-resolution depth ``[h, w]`` (or ``[h, w, 1]``): uint8 (the
            paper's [0, 255] protocol), uint16 or float. Zeros are holes: they are filled
            with the nearest valid depth before upsampling. NaN/Inf raise.
        rgb: the aligned high-resolution colour image ``[scale h, scale w, 3]`` (uint8,
            uint16 or float in [0, 1]); of an RGBA image the alpha channel is not used.
        scale: integer upsampling factor.
        model: preset name (default ``f"depth_x{scale}"``), ``.keras`` path or model.
        tile_size, self_ensemble, precision: see :func:`denoise`.

    Returns:
        The high-resolution depth ``[H, W]`` (``[H, W, 1]`` if the input had a channel
        axis) in the input's dtype. uint8 depth is processed on its own scale; other
        dtypes are mapped linearly from their [min, max] to [0, 1] and back.
    """
    from deepam_tf.data.degradations import upsample_bilinear

    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 2:
        raise ValueError(f"scale must be an integer >= 2, got {scale!r}")
    from deepam_tf.models import list_presets

    shipped = {meta["scale"]: name for name, meta in sorted(list_presets().items())
               if meta.get("task") == "depth_sr"}  # scale -> preset
    if model is None:
        if scale not in shipped:
            raise ValueError(f"no shipped depth model for x{scale} (shipped: "
                             f"{', '.join(f'x{s}' for s in sorted(shipped))}); pass a model trained for it")
        model = shipped[scale]
    depth_lr = np.asarray(depth_lr)
    squeeze = depth_lr.ndim == 2
    depth = _channels(depth_lr, 1, "depth_lr")[..., 0]
    if depth.dtype.kind not in "uif":
        raise ValueError(f"depth_lr must be an integer or float array, got dtype {depth.dtype}")
    if depth.dtype.kind == "f" and not np.all(np.isfinite(depth)):
        raise ValueError("depth_lr contains NaN or Inf (mark missing depth with 0)")
    rgb01, _ = to_unit_range(rgb, "rgb")
    if rgb01.ndim == 3 and rgb01.shape[-1] == 4:
        rgb01 = rgb01[..., :3]  # RGBA: the guidance is the colour
    rgb01 = _channels(rgb01, 3, "rgb")
    expected = (depth.shape[0] * scale, depth.shape[1] * scale)
    if rgb01.shape[:2] != expected:
        raise ValueError(
            f"rgb is {rgb01.shape[0]}x{rgb01.shape[1]} but depth_lr {depth.shape[0]}x"
            f"{depth.shape[1]} times scale {scale} is {expected[0]}x{expected[1]}"
        )
    depth = fill_holes(depth).astype(np.float64)
    if depth_lr.dtype == np.uint8:
        low, span = 0.0, 255.0
    else:
        low, span = float(depth.min()), float(depth.max() - depth.min()) or 1.0
    depth01 = ((depth - low) / span).astype(np.float32)
    upsampled = np.asarray(upsample_bilinear(depth01[..., None], int(scale)))
    trained = list_presets().get(model, {}).get("scale") if isinstance(model, str) else None
    if trained is not None and trained != scale:
        logger.warning("%s was trained for x%d and x%d was given; %s", model, trained, scale,
                       f"{shipped[scale]} is trained for x{scale}" if scale in shipped else
                       f"no shipped model is trained for x{scale}")
    model = load_for_task(model, "depth super-resolution", precision)
    inputs = {"image": upsampled[None], "guidance": rgb01[None]}
    restored = model.predict(inputs, verbose=0, tile_size=tile_size, self_ensemble=self_ensemble)[0, ..., 0]
    result = restored.astype(np.float64) * span + low
    if depth_lr.dtype.kind in "ui":
        info = np.iinfo(depth_lr.dtype)
        result = np.clip(np.round(result), info.min, info.max)
    result = result.astype(depth_lr.dtype)
    return result if squeeze else result[..., None]


def restore_with_nir(rgb, nir, sigma=None, model=AUTO_MODEL, tile_size="auto",
                     self_ensemble=False, precision=None):
    """Removes Gaussian noise from an RGB image guided by an aligned near-infrared image.

    Args:
        rgb: noisy colour image ``[H, W, 3]``; uint8, uint16 or float nominally in [0, 1].
            An ``[H, W, 4]`` image is RGB plus alpha: the alpha channel comes back unchanged.
        nir: the aligned NIR image ``[H, W]`` or ``[H, W, 1]``, same H and W.
        sigma: noise level on the 0–255 scale; ``None`` takes a fixed-σ preset's σ
            (``"rgbnir_sigma25"``) or estimates it from ``rgb``.
        model: preset name, ``.keras`` path or model (an RGB model guided by one channel);
            ``"auto"``: the blind preset for the σ (:func:`blind_preset_for`:
            ``rgbnir_blind`` to 55, ``rgbnir_high_sigma`` above; logged).
        tile_size, self_ensemble, precision: see :func:`denoise`.

    Returns:
        The restored RGB image, same shape, dtype and range as ``rgb``.
    """
    auto = isinstance(model, str) and model == AUTO_MODEL
    sigma = given_sigma(sigma, model)
    rgb, alpha_channel = split_alpha(np.asarray(rgb))
    if alpha_channel is not None and rgb.ndim == 2:  # a gray+alpha image
        raise ValueError(f"rgb must have shape [H, W, 3] or [H, W, 4], got {rgb.shape[:2] + (2,)}")
    unit, back = to_unit_range(rgb, "rgb", sigma)
    unit = _channels(unit, 3, "rgb")
    nir01, _ = to_unit_range(nir, "nir")
    nir01 = _channels(nir01, 1, "nir")
    _same_size(unit, nir01, ("rgb", "nir"))
    _warn_if_unit_scale(unit, sigma)
    if sigma is None:
        sigma = _estimated_sigma(unit)
    if auto:
        model = blind_preset_for(sigma, "rgb_nir")
        logger.info("model %s for sigma %g", model, sigma)
    name = model if isinstance(model, str) else None
    model = load_for_task(model, "RGB/NIR restoration", precision)
    warn_outside_training_range(name, sigma)
    inputs = {"image": unit[None], "guidance": nir01[None]}
    if getattr(model, "noise_level_input", False):
        inputs["noise_level"] = np.full((1, 1), sigma / 255.0, np.float32)
    restored = back(model.predict(inputs, verbose=0, tile_size=tile_size, self_ensemble=self_ensemble)[0])
    return join_alpha(restored, alpha_channel)
