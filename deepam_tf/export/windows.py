"""A static-size model (a TFLite export) over an image of any size: overlapping windows of
the export size, each pixel taken from the window in which it lies furthest from a border
its neighbours share.

DeepAM's convolutions see 10 pixels each side per stage, but its reconstruction is a
global solve, so a window's result near a border it cuts through the image differs from
the whole image's. The overlap moves those borders away from the pixels kept:
``benchmarks/tflite_windows.py`` measures how far is enough (:data:`DEFAULT_OVERLAP`).
This is the reference for an app's own loop (Kotlin, Swift): the same spans, the same
padding. In Python, ``deepam_tf.denoise`` solves whole images exactly and needs none of it.
"""

import numpy as np

DEFAULT_OVERLAP = 64  # pixels two neighbouring windows share (benchmarks/tflite_windows.py)


def window_spans(length, window, overlap=DEFAULT_OVERLAP):
    """``[(start, keep_from, keep_to)]`` along an axis of ``length`` pixels: windows of
    ``window`` pixels starting ``window - overlap`` apart (the last one flush with the end),
    each keeping ``[keep_from, keep_to)``, split from its neighbour's at the middle of what
    they share. The kept ranges tile ``[0, length)``. An axis shorter than the window has
    one window, ``(0, 0, length)``, the image padded to fill it (:func:`run_in_windows`)."""
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, window = {window}), got {overlap}")
    if length <= window:
        return [(0, 0, length)]
    starts = list(range(0, length - window, window - overlap)) + [length - window]
    cuts = [0] + [(a + b + window) // 2 for a, b in zip(starts, starts[1:])] + [length]
    return [(start, cuts[i], cuts[i + 1]) for i, start in enumerate(starts)]


def run_in_windows(run, image, size, overlap=DEFAULT_OVERLAP):
    """``run`` over ``image`` window by window.

    Args:
        run: maps one window ``[h, w, ...]`` (``size``) to its result of the same shape,
            e.g. :func:`litert_runner`.
        image: ``[H, W]`` or ``[H, W, C]`` array of any size >= 2x2. A side shorter than
            the window is padded symmetrically (mirrored, as DeepAM's Neumann boundary
            continues an image) to the window's size and cropped after.
        size: ``(h, w)``, the model's static input size.
        overlap: pixels neighbouring windows share.

    Returns:
        float32 array shaped like ``image``.

    Example:
        >>> run = litert_runner("exported/tflite/denoise_blind_256x256.tflite", sigma=25)  # doctest: +SKIP
        >>> restored = run_in_windows(run, noisy, (256, 256))  # doctest: +SKIP
    """
    image = np.asarray(image, np.float32)
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 2:
        raise ValueError(f"image must have shape [H, W] or [H, W, C] with H, W >= 2, got {image.shape}")
    (height, width), (h, w) = image.shape[:2], size
    rows, columns = window_spans(height, h, overlap), window_spans(width, w, overlap)
    pad = [(0, max(h - height, 0)), (0, max(w - width, 0))] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image, pad, mode="symmetric")
    out = np.empty_like(image)
    for y, top, bottom in rows:
        for x, left, right in columns:
            window = padded[y:y + h, x:x + w]
            result = np.asarray(run(window), np.float32)
            if result.shape != window.shape:
                raise ValueError(f"run returned shape {result.shape} for a window of shape "
                                 f"{window.shape}")
            out[top:bottom, left:right] = result[top - y:bottom - y, left - x:right - x]
    return out


def litert_runner(model, sigma=None, num_threads=None):
    """A ``run`` for :func:`run_in_windows`: the TFLite model (a path or its bytes) on one
    ``[h, w]`` or ``[h, w, C]`` window, told ``sigma`` (0–255 scale) when it takes a noise
    level, through LiteRT (``ai_edge_litert``; keep TensorFlow out of a process that runs
    LiteRT's GPU accelerator). Its ``size`` is the model's static ``(h, w)``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ImportError("litert_runner needs LiteRT: pip install ai-edge-litert") from None

    source = dict(model_content=model) if isinstance(model, bytes) else dict(model_path=str(model))
    interpreter = Interpreter(num_threads=num_threads, **source)
    interpreter.allocate_tensors()
    inputs = {d["name"]: d for d in interpreter.get_input_details()}
    others = [name for name in inputs if "image" not in name and "noise_level" not in name]
    if others:
        raise ValueError(f"this model also takes {', '.join(others)}: litert_runner feeds "
                         f"an image (and a noise level) only")
    image_input = next(d for name, d in inputs.items() if "image" in name)
    level_input = next((d for name, d in inputs.items() if "noise_level" in name), None)
    if level_input is not None:
        if sigma is None or not 0 < sigma <= 255:
            raise ValueError(f"this model takes a noise level: sigma must be in (0, 255], got {sigma!r}")
        interpreter.set_tensor(level_input["index"], np.full((1, 1), sigma / 255, np.float32))
    elif sigma is not None:
        raise ValueError("this model takes no noise level; give no sigma")
    output = interpreter.get_output_details()[0]["index"]

    def run(window):
        batch = np.asarray(window, np.float32).reshape(image_input["shape"])
        interpreter.set_tensor(image_input["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(output).reshape(np.shape(window))

    run.size = tuple(int(n) for n in image_input["shape"][1:3])
    return run
