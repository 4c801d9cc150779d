"""Training recipe: ``model.fit`` with an L1 loss, a config file, and resumable callbacks.

A config is a JSON file (see ``configs/``)::

    {"model": {...DeepAM kwargs...},
     "data": {"train": "denoise/train400", "channels": 1, "patch_size": 32,
              "batch_size": 16, "sigma_range": [0, 55], "seed": 0},
     "epochs": 100, "steps_per_epoch": 500,
     "optimizer": {"name": "adam", "learning_rate": 1e-3, "schedule": "cosine",
                   "final_learning_rate_fraction": 0.01},
     "l2": 0.0, "backup_every_steps": 100,
     "init": "denoise_blind"}

``init`` (optional) starts from a shipped preset or a ``.keras`` file of the same
architecture instead of a fresh initialisation (a fine-tuning run).

``output_dir`` receives ``model.keras`` (after every epoch), ``backup/`` (BackupAndRestore:
a killed run restarts from its last backup, mid-epoch included, and still stops after
the configured number of steps), ``logs/`` (TensorBoard) and
``history.csv`` (CSVLogger, appended across restarts).
"""

import json
import os

import keras

from deepam_tf import data
from deepam_tf.data import splits
from deepam_tf.models import DeepAM


def load_config(path):
    """Reads a training config (JSON)."""
    with open(path) as handle:
        return json.load(handle)


def build_model(config):
    """The DeepAM of a config, with the config's coupled L2 on every kernel."""
    kwargs = dict(config["model"])
    if config.get("l2"):
        # Coupled L2 as in the paper: the loss gets l2/2 ‖w‖², i.e. weight decay l2 on the
        # gradient before momentum (Keras' L2(x) adds x ‖w‖², hence the 1/2).
        kwargs["kernel_regularizer"] = keras.regularizers.L2(config["l2"] / 2)
    model = DeepAM(**kwargs)
    if config.get("init"):
        load_initial_weights(model, config["init"])
    return model


def load_initial_weights(model, init):
    """Copies every weight of preset or ``.keras`` file ``init`` into ``model``, or raises
    naming the first architecture difference (never a partial load)."""
    from deepam_tf.models.presets import load_preset

    source = load_preset(init)
    ours = model.get_config()
    theirs = source.get_config()
    for key in ("stages", "channels", "guidance_channels", "noise_level_input", "features",
                "depth", "gamma_layer", "fusion_layer", "guidance_depth"):
        if ours.get(key) != theirs.get(key):
            raise ValueError(
                f"init {init!r} has {key}={theirs.get(key)!r} but the config's model has "
                f"{key}={ours.get(key)!r}"
            )
    values = source.get_weights()
    shapes = [tuple(w.shape) for w in model.weights]
    if len(values) != len(shapes) or any(v.shape != s for v, s in zip(values, shapes)):
        raise ValueError(f"init {init!r}: its weights do not match the config's model")
    model.set_weights(values)


def build_optimizer(config):
    """SGD (momentum) or Adam with a constant, cosine or step learning-rate schedule."""
    opt = dict(config["optimizer"])
    total_steps = config["epochs"] * config["steps_per_epoch"]
    rate = opt["learning_rate"]
    schedule = opt.get("schedule", "constant")
    if schedule == "cosine":
        warmup = opt.get("warmup_steps", 0)
        alpha = opt.get("final_learning_rate_fraction", 0.0)
        if warmup:
            # Linear warm-up from 0 (fresh Adam moments on trained weights), then cosine.
            rate = keras.optimizers.schedules.CosineDecay(
                0.0, total_steps - warmup, alpha=alpha, warmup_target=rate, warmup_steps=warmup
            )
        else:
            rate = keras.optimizers.schedules.CosineDecay(rate, total_steps, alpha=alpha)
    elif schedule == "step":
        boundaries = [e * config["steps_per_epoch"] for e in opt["decay_epochs"]]
        values = [rate * opt.get("decay_factor", 0.1) ** i for i in range(len(boundaries) + 1)]
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    elif schedule != "constant":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}")
    common = dict(learning_rate=rate, clipnorm=opt.get("clipnorm"))
    if opt["name"] == "sgd":
        return keras.optimizers.SGD(momentum=opt.get("momentum", 0.9), **common)
    if opt["name"] == "adam":
        return keras.optimizers.Adam(**common)
    raise ValueError(f"unknown optimizer {opt['name']!r}")


def degradation_for(config):
    """The on-the-fly degradation a config trains with."""
    spec = config["data"]
    if spec.get("task", "denoise") == "depth_sr":
        return data.DepthDownsampling(spec["scale"])
    noise_level_input = config["model"].get("noise_level_input", False)
    if "sigma_range" in spec:
        return data.GaussianNoise(sigma_range=spec["sigma_range"], noise_level_input=noise_level_input)
    return data.GaussianNoise(sigma=spec["sigma"], noise_level_input=noise_level_input)


def train_samples(config, data_root=None):
    """The clean training samples of a config: ``{"image"}`` for denoising,
    ``{"image", "guidance"}`` for the joint tasks (``data.task``: ``"depth_sr"`` trains
    on the depth sets minus the test scenes, ``"rgb_nir"`` on the RGB/NIR training split)."""
    spec = config["data"]
    root = data.data_dir(data_root)
    task = spec.get("task", "denoise")
    if task == "denoise":
        files = data.list_images(os.path.join(root, spec["train"]))
        return data.image_dataset(files, spec.get("channels", 1))
    if task == "depth_sr":
        return data.paired_dataset(splits.depth_train_pairs(root), 1, 3)
    if task == "rgb_nir":
        return data.paired_dataset(splits.rgb_nir_pairs(root, "train"), 3, 1)
    raise ValueError(f"unknown task {task!r} in the config's data section")


def train_dataset(config, data_root=None):
    """The infinite training batches of a config."""
    spec = config["data"]
    return data.patch_dataset(
        train_samples(config, data_root),
        degradation_for(config),
        patch_size=spec.get("patch_size", 32),
        batch_size=spec.get("batch_size", 16),
        seed=spec.get("seed", 0),
    )


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' callback with the resumed epoch kept: Keras 3 starts its epoch counter at 0
    after a resume, so backups written before the next epoch end record epoch 0 and a
    second interruption would rerun every epoch."""

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._current_epoch = getattr(self.model, "_initial_epoch", None) or 0


class StopAtStep(keras.callbacks.Callback):
    """Ends training once the optimizer has taken ``steps`` steps. Keras 3 resumes a backup
    with its weights, optimizer state and epoch but reruns that epoch's steps from its
    start, which would overrun the schedule; this keeps a resumed run's total exact."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.steps:
            self.model.stop_training = True


def train(config, output_dir, data_root=None, verbose=1, epochs=None):
    """Trains (or resumes) the config's model into ``output_dir``; returns the model.

    ``epochs`` overrides the config's epoch count (the schedule keeps the config's
    length, so a shortened run is a prefix of the full one).
    """
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "config.json"), "w") as handle:
        json.dump(config, handle, indent=2)
    model = build_model(config)
    model.compile(optimizer=build_optimizer(config), loss="mean_absolute_error", jit_compile=False)
    callbacks = [
        BackupAndRestore(
            os.path.join(output_dir, "backup"), save_freq=config.get("backup_every_steps", "epoch")
        ),
        keras.callbacks.ModelCheckpoint(os.path.join(output_dir, "model.keras")),
        keras.callbacks.TensorBoard(os.path.join(output_dir, "logs"), profile_batch=0),
        keras.callbacks.CSVLogger(os.path.join(output_dir, "history.csv"), append=True),
        StopAtStep((epochs or config["epochs"]) * config["steps_per_epoch"]),
    ]
    model.fit(
        train_dataset(config, data_root),
        epochs=epochs or config["epochs"],
        steps_per_epoch=config["steps_per_epoch"],
        shuffle=False,  # the patch stream draws its own random crops
        callbacks=callbacks,
        verbose=verbose,
    )
    return model
