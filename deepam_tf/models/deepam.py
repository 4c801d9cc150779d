import keras

from deepam_tf.layers import (
    AggregationNetwork,
    GammaNetwork,
    GuidanceNetwork,
    NoiseLevelMap,
    Reconstruction,
)
from deepam_tf.ops import reconstruction as reconstruct_ops
from deepam_tf.ops.reconstruction import shape_text

# Accepted values of float images: [0, 1] plus room for heavy noise (σ = 255 / 4 on the
# 0-255 scale still stays inside with overwhelming probability); for a larger noise level,
# six of its standard deviations on either side.
FLOAT_RANGE = (-1.5, 2.5)
FLOAT_MARGIN_SIGMAS = 6


def float_range_error(name, low, high, noise_level=0.0):
    """``None``, or the message refusing float values in ``[low, high]`` as the image
    ``name`` on the [0, 1] scale with noise of standard deviation ``noise_level`` (on that
    scale too): :data:`FLOAT_RANGE`, widened for a large noise level."""
    margin = max(-FLOAT_RANGE[0], FLOAT_MARGIN_SIGMAS * noise_level)
    if low < min(FLOAT_RANGE[0], -margin) or high > max(FLOAT_RANGE[1], 1 + margin):
        return (f"{name} is float with values in [{low:g}, {high:g}]; float images must be on "
                f"the [0, 1] scale (noise may push them slightly outside): divide a 0-255 "
                f"image by 255")
    return None


@keras.saving.register_keras_serializable(package="deepam_tf")
class DeepAM(keras.Model):
    """DeepAM(K): K cascaded stages of learned alternating minimisation.

    Stage k maps ``u_k`` (``u_0 = f``, the degraded image) to
    ``u_{k+1} = (Γ_k + DᵀD)⁻¹ (Γ_k f + Dᵀ v_k)`` where ``v_k`` comes from an
    :class:`AggregationNetwork` on ``u_k`` (fused with a :class:`GuidanceNetwork` on the
    guidance image for joint tasks) and ``γ_k`` from a :class:`GammaNetwork` on its
    ``gamma_layer`` features. Each stage has its own weights. The output is the last
    stage's u. Fully convolutional: any H and W >= 2.

    Args:
        stages: int. Number of stages K.
        channels: int. Image channels C.
        guidance_channels: int. Guidance channels G; 0 for plain restoration. When > 0
            the input is a dict ``{"image": [B,H,W,C], "guidance": [B,H,W,G]}``.
        noise_level_input: bool. Condition on the noise level: the input (a dict) then
            also has ``"noise_level"`` ``[B, 1]``, σ on the image's [0, 1] scale
            (σ/255 for 8-bit images), fed to every stage as a constant map.
        features: int. Feature maps of the sub-networks (paper: 64).
        depth: int. Convolution layers of the aggregation network (paper: 10).
        gamma_layer: int. Layer whose features feed the γ network (paper: 8).
        fusion_layer: int. Layer after which guidance is fused (paper: 3).
        guidance_depth: int. Convolution layers of the guidance network (paper: 3).
        residual_gradients: bool. See :class:`AggregationNetwork`.
        gamma_floor, initial_gamma: see :class:`GammaNetwork`.
        iterations, tolerance, preconditioner, unrolled: see :class:`Reconstruction`.
        kernel_regularizer: applied to every convolution kernel (e.g. ``L2(2.5e-4)``
            for the paper's weight decay 5e-4).
        freeze_batch_norm: bool. Make every batch-norm layer non-trainable: it then runs
            in inference mode, in training too, with its scale, offset and statistics
            fixed (for fine-tuning on data narrower than the model was trained on).
            ``get_config`` reports whether they are all frozen, so a saved model
            reloads as it was.
        dtype: Keras dtype policy of the networks (default: the global policy), e.g.
            ``"mixed_bfloat16"``: bfloat16 convolutions with float32 weights. The
            first convolution of each network (it reads the image), ``D u`` and the
            noise-level map stay float32, the reconstruction always solves in float32,
            and the output is float32.

    Example:
        >>> model = DeepAM(stages=3, channels=1)
        >>> model(keras.ops.zeros([1, 33, 40, 1])).shape
        (1, 33, 40, 1)
        >>> joint = DeepAM(stages=2, channels=1, guidance_channels=3)
        >>> joint({"image": keras.ops.zeros([1, 16, 16, 1]),
        ...        "guidance": keras.ops.zeros([1, 16, 16, 3])}).shape
        (1, 16, 16, 1)

    Reference: Kim, Jung, Min, Sohn, "Deeply Aggregated Alternating Minimization for
    Image Restoration", CVPR 2017.
    """

    def __init__(
        self,
        stages=3,
        channels=1,
        guidance_channels=0,
        noise_level_input=False,
        features=64,
        depth=10,
        gamma_layer=8,
        fusion_layer=3,
        guidance_depth=3,
        residual_gradients=True,
        gamma_floor=1e-3,
        initial_gamma=0.1,
        iterations=reconstruct_ops.DEFAULT_ITERATIONS,
        tolerance=reconstruct_ops.DEFAULT_TOLERANCE,
        preconditioner=reconstruct_ops.DEFAULT_PRECONDITIONER,
        unrolled=False,
        kernel_regularizer=None,
        freeze_batch_norm=False,
        dtype=None,
        **kwargs,
    ):
        if not isinstance(freeze_batch_norm, bool):
            raise ValueError(f"freeze_batch_norm must be true or false, got {freeze_batch_norm!r}")
        if stages < 1 or channels < 1 or guidance_channels < 0:
            raise ValueError(
                f"need stages >= 1, channels >= 1, guidance_channels >= 0; got "
                f"{stages}, {channels}, {guidance_channels}"
            )
        kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        policy = keras.dtype_policies.get(dtype) if dtype is not None else keras.config.dtype_policy()
        image = keras.Input((None, None, channels), name="image")
        inputs = {"image": image}
        guidance = noise_map = None
        if guidance_channels:
            guidance = keras.Input((None, None, guidance_channels), name="guidance")
            inputs["guidance"] = guidance
        if noise_level_input:
            inputs["noise_level"] = keras.Input((1,), name="noise_level")
            # In the weights' dtype: the networks read σ, like the image, unrounded.
            noise_map = NoiseLevelMap(name="noise_level_map", dtype=policy.variable_dtype)(
                image, inputs["noise_level"]
            )
        if len(inputs) == 1:
            inputs = image
        u = image
        for k in range(1, stages + 1):
            guidance_features = None
            if guidance is not None:
                guidance_features = GuidanceNetwork(
                    features,
                    guidance_depth,
                    kernel_regularizer=kernel_regularizer,
                    name=f"stage{k}_guidance",
                    dtype=policy,
                )(guidance)
            v, gamma_features = AggregationNetwork(
                channels,
                features,
                depth,
                gamma_layer,
                fusion_layer,
                residual_gradients,
                kernel_regularizer=kernel_regularizer,
                name=f"stage{k}_aggregation",
                dtype=policy,
            )(u, guidance_features=guidance_features, conditioning=noise_map)
            gamma = GammaNetwork(
                channels,
                gamma_floor,
                initial_gamma,
                kernel_regularizer=kernel_regularizer,
                name=f"stage{k}_gamma",
                dtype=policy,
            )(gamma_features)
            u = Reconstruction(
                iterations, tolerance, preconditioner, unrolled, name=f"stage{k}_reconstruction"
            )(image, v, gamma)
        super().__init__(inputs=inputs, outputs=u, **kwargs)
        self.stages = stages
        self.channels = channels
        self.guidance_channels = guidance_channels
        self.noise_level_input = noise_level_input
        self.features = features
        self.depth = depth
        self.gamma_layer = gamma_layer
        self.fusion_layer = fusion_layer
        self.guidance_depth = guidance_depth
        self.residual_gradients = residual_gradients
        self.gamma_floor = gamma_floor
        self.initial_gamma = initial_gamma
        self.iterations = iterations
        self.tolerance = tolerance
        self.preconditioner = preconditioner
        self.unrolled = unrolled
        self.kernel_regularizer = kernel_regularizer
        self.policy = policy
        for layer in self.batch_norm_layers() if freeze_batch_norm else ():
            layer.trainable = False  # Keras 3: inference mode, in training too

    @property
    def freeze_batch_norm(self):
        """Whether every batch-norm layer is frozen (non-trainable)."""
        norms = self.batch_norm_layers()
        return bool(norms) and not any(layer.trainable for layer in norms)

    def batch_norm_layers(self):
        """Every batch-norm layer: the model's own, and those its layers hold in a
        ``norms`` list (:class:`deepam_tf.layers.AggregationNetwork`)."""
        found = []
        for layer in self.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                found.append(layer)
            found.extend(norm for norm in getattr(layer, "norms", ())
                         if isinstance(norm, keras.layers.BatchNormalization))
        return found

    def input_names(self):
        """The input keys this model expects, in order: "image", then "guidance" and
        "noise_level" where configured. A single-input model takes the bare image."""
        names = ["image"]
        if self.guidance_channels:
            names.append("guidance")
        if self.noise_level_input:
            names.append("noise_level")
        return names

    def _check_inputs(self, inputs):
        names = self.input_names()
        expected = {
            "image": f"[B, H, W, {self.channels}]",
            "guidance": f"[B, H, W, {self.guidance_channels}]",
            "noise_level": "[B, 1]",
        }
        if len(names) > 1:
            if not isinstance(inputs, dict) or set(inputs) != set(names):
                got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
                wanted = ", ".join(f"'{n}' {expected[n]}" for n in names)
                raise ValueError(f"inputs must be a dict with keys {wanted}; got {got}")
        elif isinstance(inputs, dict):
            raise ValueError(
                f"this DeepAM takes the image {expected['image']} alone, got a dict with "
                f"keys {sorted(inputs)}"
            )
        else:
            inputs = {"image": inputs}
        for name in names:
            shape = tuple(inputs[name].shape)
            if name == "noise_level":
                if len(shape) != 2 or shape[-1] not in (None, 1):
                    raise ValueError(f"noise_level must have shape [B, 1], got {shape_text(shape)}")
                continue
            channels = self.channels if name == "image" else self.guidance_channels
            if len(shape) != 4 or shape[-1] not in (None, channels):
                raise ValueError(
                    f"{name} must have shape {expected[name]}, got {shape_text(shape)}"
                )
            if any(d is not None and d < 2 for d in shape[1:3]):
                raise ValueError(f"{name} must have H and W >= 2, got {shape_text(shape)}")
        if self.guidance_channels:
            image_hw = tuple(inputs["image"].shape)[1:3]
            guidance_hw = tuple(inputs["guidance"].shape)[1:3]
            if None not in image_hw + guidance_hw and image_hw != guidance_hw:
                raise ValueError(
                    f"image and guidance must have the same H and W, got {image_hw} and "
                    f"{guidance_hw}"
                )

    def _check_arrays(self, x):
        """:meth:`predict`'s checks of array inputs (Keras' own pipeline reports a bad
        batch or shape with errors that name no input, and takes any dtype and NaN)."""
        import numpy as np

        if not (hasattr(x, "shape") or (isinstance(x, dict) and all(hasattr(v, "shape") for v in x.values()))):
            return
        self._check_inputs(x)
        named = x if isinstance(x, dict) else {"image": x}
        batches = {name: int(value.shape[0]) for name, value in named.items()}
        if len(set(batches.values())) > 1:
            raise ValueError(f"inputs must have one batch size, got {batches}")
        values = {}
        for name, value in named.items():
            dtype = keras.backend.standardize_dtype(value.dtype)
            if "float" not in dtype:
                raise ValueError(f"{name} must be float (images in [0, 1]), got {dtype}; divide "
                                 f"uint8 images by 255, or use deepam_tf.denoise, which takes them")
            values[name] = np.asarray(value)
            if not np.all(np.isfinite(values[name])):
                raise ValueError(f"{name} contains NaN or Inf")
        if any(value.size == 0 for value in values.values()):
            return
        level = 1.0  # no noise level given: room for any σ up to 255
        if "noise_level" in values:
            low, level = float(values["noise_level"].min()), float(values["noise_level"].max())
            if low < 0 or level > 1:
                raise ValueError(f"noise_level must be σ on the image's [0, 1] scale, in [0, 1] "
                                 f"(25 / 255 for σ = 25 on the 0-255 scale), got values in "
                                 f"[{low:g}, {level:g}]")
        for name in ("image", "guidance"):
            if name in values:
                error = float_range_error(name, float(values[name].min()), float(values[name].max()),
                                          level)
                if error:
                    raise ValueError(error)

    def call(self, inputs, training=None, mask=None):
        self._check_inputs(inputs)
        return super().call(inputs, training=training, mask=mask)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None, tile_size=None,
                self_ensemble=False):
        """Keras ``predict``, plus ``tile_size`` (pixels or ``"auto"``): run each stage's
        CNNs tile by tile and the reconstruction on the whole image, which bounds memory
        and gives the untiled result (see :mod:`deepam_tf.models.tiling`); and
        ``self_ensemble``: average over the 8 rotations and flips of the input (8× the
        time, see :mod:`deepam_tf.models.ensemble`).

        Arrays (numpy or tensors) are checked first: shapes, one batch size, a floating
        dtype, finite values, images on the [0, 1] scale (noisy ones a little outside:
        :func:`float_range_error`) and ``noise_level`` in [0, 1] (σ / 255), each refused
        with a ValueError naming the input; datasets and generators go to Keras as they
        are."""
        self._check_arrays(x)
        if self_ensemble:  # the 8 flips of checked arrays: not checked again
            from deepam_tf.models.ensemble import self_ensemble as ensemble

            return ensemble(lambda part: self._predict(part, batch_size, verbose, steps, callbacks,
                                                       tile_size), x)
        return self._predict(x, batch_size, verbose, steps, callbacks, tile_size)

    def _predict(self, x, batch_size, verbose, steps, callbacks, tile_size):
        """:meth:`predict` of one pass, on inputs already checked."""
        if tile_size is None:
            return super().predict(
                x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks
            )
        import numpy as np

        from deepam_tf.models.tiling import tiled_predict

        first = x["image"] if isinstance(x, dict) else x
        total = int(first.shape[0])
        size = batch_size or 32
        chunks = []
        for start in range(0, total, size):
            part = (
                {key: value[start:start + size] for key, value in x.items()}
                if isinstance(x, dict)
                else x[start:start + size]
            )
            chunks.append(tiled_predict(self, part, tile_size))
        return np.concatenate(chunks, axis=0)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "stages": self.stages,
            "channels": self.channels,
            "guidance_channels": self.guidance_channels,
            "noise_level_input": self.noise_level_input,
            "features": self.features,
            "depth": self.depth,
            "gamma_layer": self.gamma_layer,
            "fusion_layer": self.fusion_layer,
            "guidance_depth": self.guidance_depth,
            "residual_gradients": self.residual_gradients,
            "gamma_floor": self.gamma_floor,
            "initial_gamma": self.initial_gamma,
            "iterations": self.iterations,
            "tolerance": self.tolerance,
            "preconditioner": self.preconditioner,
            "unrolled": self.unrolled,
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "freeze_batch_norm": self.freeze_batch_norm,
            "dtype": self.policy.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def from_preset(cls, preset, dtype=None):
        """Loads shipped weights by name (see ``deepam_tf.list_presets()``) or a
        ``.keras`` file by path; ``dtype``: the dtype policy to run them in, e.g.
        ``"mixed_bfloat16"`` (faster on CPUs with AVX512-BF16 or AMX and on recent GPUs)."""
        from deepam_tf.models.presets import load_preset

        model = load_preset(preset, dtype)
        if not isinstance(model, cls):
            raise ValueError(f"preset {preset!r} holds a {type(model).__name__}, not a {cls.__name__}")
        return model
