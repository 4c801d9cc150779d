"""SavedModel export for TF-Serving: ``DIR/<model_name>/<version>/``, tag ``serve``.

Signatures (names are the TF-Serving request keys):

* ``serving_default``: ``image`` float32 ``[B, H, W, C]`` in [0, 1] (plus ``guidance``
  ``[B, H, W, G]`` for joint models, plus ``sigma`` float32 ``[B]`` on the 0–255 scale for
  noise-level-conditioned models) -> ``restored`` float32 ``[B, H, W, C]``. Dynamic batch
  and spatial size.
* ``encoded``: ``image_bytes`` string ``[B]`` (PNG/JPEG; REST clients send
  ``{"b64": ...}``) (plus ``guidance_bytes``, ``sigma``) -> ``png_bytes`` string ``[B]``.
  A noise-level-conditioned grayscale denoiser takes gray, gray+alpha, RGB and RGBA
  images here: RGB in the opponent colour space (:mod:`deepam_tf.colour`), except JPEG
  bytes, whose chroma noise JPEG removed, channel by channel (``deepam_tf.denoise``
  decides from the pixels instead); alpha returned unchanged. The bytes are read as
  ``deepam denoise`` reads files (:mod:`deepam_tf.export.serving_image`): an EXIF
  orientation is applied, so the PNG returned is upright, and a 16-bit PNG is answered in
  16 bits (8 otherwise).

A SavedModel may hold several noise-level-conditioned models of one interface, each serving
the requests whose σ falls in its band (``above``) or equals its σ (``exact``): ``deepam
export auto`` routes σ above 55 to ``denoise_high_sigma`` (``--specialists``: σ = 15, 25
and 50 to their fixed-σ presets) as ``deepam_tf.denoise``'s ``model="auto"`` does, image by
image (an RGB image in the opponent colour space by the σ of its noisiest channel, and to a
blind preset, as there).

Bad requests (wrong rank or channel count, NaN or Inf pixels, sigma outside (0, 255],
bytes that are not an image) fail with an ``InvalidArgument`` error naming the problem; the
server keeps running.
"""

import os
import re

import keras
import tensorflow as tf

from deepam_tf import colour
from deepam_tf.export import serving_image
from deepam_tf.restore import MAX_SIGMA


MODEL_NAME = re.compile(r"[A-Za-z0-9_.-]+")


class _Serving:
    """The request handling; the model's variables are tracked by a Keras ExportArchive
    (tracking the Keras model object itself would save each variable under two handles,
    and the TF1/C++ loader that TF-Serving uses would then restore the wrong one)."""

    def __init__(self, model, above=(), exact=()):
        self.models = [model] + [routed for _, routed in above] + [routed for _, routed in exact]
        self.bounds = [float(sigma) for sigma, _ in above]  # model i serves σ in (bounds[i-1], bounds[i]]
        self.exact = [float(sigma) for sigma, _ in exact]  # then model len(bounds) + 1 + j serves exact[j]
        self.channels = model.channels
        self.guidance_channels = getattr(model, "guidance_channels", 0)
        self.conditioned = getattr(model, "noise_level_input", False)

    def _check(self, tensor, channels, name):
        tf.debugging.assert_rank(tensor, 4, message=f"{name} must have shape [B, H, W, {channels}]")
        tf.debugging.assert_equal(
            tf.shape(tensor)[-1], channels, message=f"{name} must have {channels} channels"
        )
        tf.debugging.assert_greater_equal(
            tf.reduce_min(tf.shape(tensor)[1:3]), 2, message=f"{name} must be at least 2x2 pixels"
        )
        return tf.debugging.assert_all_finite(tensor, f"{name} contains NaN or Inf")

    def restore(self, image, guidance=None, sigma=None, route_sigma=None, exact=True):
        """The restored batch; with several models, each image by the one whose σ band
        holds its ``route_sigma`` (default: its ``sigma``), or (``exact``, a bool or a
        scalar bool tensor) the one specialised to exactly that σ."""
        image = self._check(image, self.channels, "image")
        inputs = {"image": image}
        if self.guidance_channels:
            inputs["guidance"] = self._check(guidance, self.guidance_channels, "guidance")
        if self.conditioned:
            tf.debugging.assert_equal(
                tf.shape(sigma)[0], tf.shape(image)[0], message="sigma needs one value per image"
            )
            in_range = tf.logical_and(sigma > 0.0, sigma <= MAX_SIGMA)  # false for NaN
            tf.debugging.Assert(tf.reduce_all(in_range),
                                [f"sigma must be in (0, {MAX_SIGMA:g}] (0-255 scale), got", sigma])
            inputs["noise_level"] = tf.reshape(sigma / 255.0, [-1, 1])
        if len(self.models) > 1:
            return self._routed(inputs, sigma if route_sigma is None else route_sigma, exact)
        return self.models[0](inputs if len(inputs) > 1 else image, training=False)

    def _routed(self, inputs, route_sigma, exact):
        """Each image of the batch through the model of its σ band or exact σ: the batch
        split by model, each part run only when it holds an image, and put back in order."""
        bounds = tf.constant(self.bounds, tf.float32)
        band = tf.reduce_sum(tf.cast(route_sigma[:, None] > bounds[None, :], tf.int32), axis=1)
        for j, level in enumerate(self.exact):
            band = tf.where(tf.logical_and(exact, tf.equal(route_sigma, level)), len(self.bounds) + 1 + j, band)
        count = len(self.models)
        positions = tf.dynamic_partition(tf.range(tf.shape(band)[0]), band, count)
        parts = {key: tf.dynamic_partition(value, band, count) for key, value in inputs.items()}
        outputs = []
        for i, model in enumerate(self.models):
            part = {key: value[i] for key, value in parts.items()}
            outputs.append(tf.cond(tf.size(positions[i]) > 0,
                                   lambda model=model, part=part: model(part, training=False),
                                   lambda part=part: tf.zeros_like(part["image"])))
        return tf.dynamic_stitch(positions, outputs)

    def _denoise_any_colour(self, image, level, opponent):
        """``[H, W, 1-4]`` (gray, gray+alpha, RGB, RGBA) -> the same layout, restored:
        each channel of gray, of the opponent transform of RGB (``opponent``) at its noise
        level, or of RGB."""
        count = tf.shape(image)[-1]
        colours = count - (1 - count % 2)  # 2 and 4 channels end with alpha
        colour_part, alpha = image[..., :colours], image[..., colours:]

        def channels_first(x):
            return tf.transpose(x, [2, 0, 1])[..., None]

        def channels_last(batch):
            return tf.transpose(batch[..., 0], [1, 2, 0])

        # One model call for either colour handling (each call traces the whole cascade).
        use_opponent = tf.logical_and(tf.equal(colours, 3), opponent)
        matrix, inverse = (tf.constant(m.T, tf.float32) for m in (colour.OPPONENT, colour.INVERSE))
        offset = tf.constant(colour.OFFSET, tf.float32)
        planes, sigmas = tf.cond(  # the opponent channels at their noise levels, or each channel at σ
            use_opponent,
            lambda: (tf.tensordot(colour_part, matrix, 1) + offset, level * tf.constant(colour.NOISE_SCALE, tf.float32)),
            lambda: (colour_part, tf.fill([colours], level)))
        # One model for all channels, chosen by the noisiest, and a blind one for the opponent
        # channels (deepam_tf.denoise's "auto").
        route = tf.fill([colours], tf.reduce_max(sigmas))
        restored = channels_last(self.restore(channels_first(planes), sigma=sigmas, route_sigma=route,
                                              exact=tf.logical_not(use_opponent)))
        restored = tf.cond(use_opponent, lambda: tf.tensordot(restored - offset, inverse, 1), lambda: restored)
        return tf.concat([tf.clip_by_value(restored, 0.0, 1.0), alpha], axis=-1)

    def restore_encoded(self, image_bytes, guidance_bytes=None, sigma=None):
        any_colour = self.conditioned and self.channels == 1 and not self.guidance_channels

        def one(args):
            data, guide, level = args
            if any_colour:
                restored = self._denoise_any_colour(serving_image.decode_upright(data, 0), level,
                                                    tf.logical_not(tf.io.is_jpeg(data)))
            else:
                image = serving_image.decode_upright(data, self.channels)[None]
                guidance = (serving_image.decode_upright(guide, self.guidance_channels)[None]
                            if self.guidance_channels else None)
                restored = self.restore(image, guidance, tf.reshape(level, [1]) if self.conditioned else None)[0]
            return serving_image.encode_png(restored, serving_image.is_16_bit_png(data))

        n = tf.shape(image_bytes)[0]
        guides = guidance_bytes if guidance_bytes is not None else tf.fill([n], "")
        levels = sigma if sigma is not None else tf.zeros([n])
        return tf.map_fn(one, (image_bytes, guides, levels), fn_output_signature=tf.string)


def _add_signatures(archive, module):
    c, g = module.channels, module.guidance_channels
    float_specs = {"image": tf.TensorSpec([None, None, None, c], tf.float32, name="image")}
    bytes_specs = {"image_bytes": tf.TensorSpec([None], tf.string, name="image_bytes")}
    if g:
        float_specs["guidance"] = tf.TensorSpec([None, None, None, g], tf.float32, name="guidance")
        bytes_specs["guidance_bytes"] = tf.TensorSpec([None], tf.string, name="guidance_bytes")
    if module.conditioned:
        float_specs["sigma"] = tf.TensorSpec([None], tf.float32, name="sigma")
        bytes_specs["sigma"] = tf.TensorSpec([None], tf.float32, name="sigma")

    def serve(*args):
        inputs = dict(zip(float_specs, args))
        return {"restored": module.restore(
            inputs["image"], inputs.get("guidance"), inputs.get("sigma"))}

    def serve_encoded(*args):
        inputs = dict(zip(bytes_specs, args))
        return {"png_bytes": module.restore_encoded(
            inputs["image_bytes"], inputs.get("guidance_bytes"), inputs.get("sigma"))}

    archive.add_endpoint("serving_default", serve, input_signature=list(float_specs.values()))
    archive.add_endpoint("encoded", serve_encoded, input_signature=list(bytes_specs.values()))


def check_model_name(name, label="model name"):
    """ValueError unless ``name`` is one folder name, as TF-Serving's MODEL_NAME is (a
    name joined to the export path: ``"../x"`` would write beside it)."""
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name) or set(name) == {"."}:
        raise ValueError(f"{label} must be one folder name of letters, digits, '_', '-' and '.', "
                         f"got {name!r}")


def _check_routes(model, above, exact):
    """ValueError unless the ``above`` and ``exact`` routes of :func:`export_saved_model`
    can serve."""
    if not above and not exact:
        return
    if not getattr(model, "noise_level_input", False):
        raise ValueError("routing by sigma (above=..., exact=...) needs noise-level-conditioned "
                         f"models; {model.name!r} takes no noise level")
    previous = 0.0
    for sigma, _ in above:
        if not previous < sigma < MAX_SIGMA:
            raise ValueError(f"the sigmas of above=... must rise within (0, {MAX_SIGMA:g}), got "
                             f"{[s for s, _ in above]}")
        previous = sigma
    levels = [sigma for sigma, _ in exact]
    if len(set(levels)) != len(levels) or not all(0 < sigma <= MAX_SIGMA for sigma in levels):
        raise ValueError(f"the sigmas of exact=... must be distinct and in (0, {MAX_SIGMA:g}], got {levels}")
    for kind, (sigma, routed) in [("above", route) for route in above] + [("exactly", route) for route in exact]:
        interface = [(getattr(m, "channels", None), getattr(m, "guidance_channels", 0),
                      getattr(m, "noise_level_input", False)) for m in (model, routed)]
        if interface[0] != interface[1]:
            raise ValueError(f"model {routed.name!r} for sigma {kind} {sigma:g} takes (channels, "
                             f"guidance channels, noise level) {interface[1]}, the first model "
                             f"{interface[0]}: a routed SavedModel needs one interface")


def _save_variables_in_model_order(archive, models):
    """Makes ``archive`` save the variables in the order of ``models``' own lists. Keras
    saves them in the order the traced functions capture them, which changes from one
    export to the next, so the same weights gave a different variables file each time
    (and a new copy of it in git)."""
    collect = getattr(archive, "_filter_and_track_resources", None)  # Keras' (private) step that lists them
    if collect is None:  # another Keras: its own order (tests/test_export_saved_model.py tells)
        return
    rank = {id(v.value): i for i, v in enumerate(v for m in models for v in m.variables)}

    def collect_in_order():
        collect()
        saved = archive._tf_trackable
        saved._all_variables = sorted(saved._all_variables, key=lambda v: rank.get(id(v), len(rank)))

    archive._filter_and_track_resources = collect_in_order


def export_saved_model(model, directory, model_name="deepam", version=1, above=(), exact=()):
    """Writes ``model`` as ``directory/model_name/version/`` for TF-Serving; returns that path.

    Args:
        model: a :class:`deepam_tf.DeepAM` (loaded preset or trained model).
        directory: TF-Serving's model base folder.
        model_name: the served model's name (one folder name).
        version: the integer version folder; an existing one is never replaced.
        above: ``(sigma, model)`` pairs, σ ascending: requests whose σ (0–255 scale) is
            above ``sigma`` go to that model (up to the next pair's σ), the rest to
            ``model``. Noise-level-conditioned models of one interface only. E.g.
            ``[(55, load_preset("denoise_high_sigma"))]`` with ``denoise_blind``, as
            :func:`deepam_tf.restore.blind_routes` gives them.
        exact: ``(sigma, model)`` pairs: requests of exactly that σ go to that model
            (fixed-σ specialists, as :func:`deepam_tf.restore.specialist_presets` gives
            them), except RGB images that the ``encoded`` signature denoises in the
            opponent colour space, whose channels have σ of their own.

    Example:
        >>> export_saved_model(load_preset("denoise_blind"), "serving", "denoise")  # doctest: +SKIP
        'serving/denoise/1'
    """
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive int (TF-Serving serves integer folders), got {version!r}")
    check_model_name(model_name)
    path = os.path.join(directory, model_name, str(version))
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; choose another version")
    for folder in (directory, os.path.join(directory, model_name)):
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise ValueError(f"{folder} is a file; the SavedModel goes into a folder there")
    _check_routes(model, above, exact)
    archive = keras.export.ExportArchive()
    models = [model] + [routed for _, routed in [*above, *exact]]
    for tracked in models:
        archive.track(tracked)
    _add_signatures(archive, _Serving(model, above, exact))
    _save_variables_in_model_order(archive, models)
    archive.write_out(
        path, options=tf.saved_model.SaveOptions(experimental_custom_gradients=False), verbose=False
    )
    return path
