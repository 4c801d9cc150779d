"""Training recipe: ``model.fit`` with an L1 loss (``"loss": "l2"``: mean squared error;
``"psnr"``: minus each patch's PSNR), a config file, and resumable callbacks.

A config is a JSON file (see ``configs/``)::

    {"model": {...DeepAM kwargs...},
     "data": {"train": "denoise/train400", "channels": 1, "patch_size": 32,
              "batch_size": 16, "sigma_range": [0, 55], "seed": 0},
     "epochs": 100, "steps_per_epoch": 500,
     "optimizer": {"name": "adam", "learning_rate": 1e-3, "schedule": "cosine",
                   "final_learning_rate_fraction": 0.01, "ema": 0.999},
     "l2": 0.0, "backup_every_steps": 100,
     "init": "denoise_blind"}

``init`` (optional) starts from a shipped preset or a ``.keras`` file of the same
architecture instead of a fresh initialisation (a fine-tuning run). ``optimizer.ema``
(optional, a decay in (0, 1)) keeps an exponential moving average of the trainable
weights in the optimizer (Keras' ``use_ema``; backed up and resumed with it).
``"model": {"freeze_batch_norm": true, ...}`` runs every batch-norm layer in inference
mode with its scale, offset and statistics fixed: fine-tune a model this way on data
narrower than it was trained on (one σ, say), where the moving statistics would drift to
that data's (benchmarks/denoising_log.md: fine-tuning the blind denoiser on σ=50 alone loses
0.57 dB in 500 steps with them, nothing with them frozen). The saved models keep it.

``output_dir`` receives ``model.keras`` (after every epoch; with ``ema``, also
``model_ema.keras``, the same model with the averaged weights and batch-norm statistics
recomputed for them, :func:`recompute_batch_norm`), ``backup/`` (BackupAndRestore:
a killed run restarts from its last backup, mid-epoch included, finishes that epoch's
remaining steps and stops after the configured number of steps, as a run never killed
does), ``logs/`` (TensorBoard) and ``history.csv`` (CSVLogger, appended across restarts:
one row per finished epoch).
"""

import json
import os

import keras
import numpy as np

from deepam_tf import data
from deepam_tf.data import splits
from deepam_tf.models import DeepAM
from deepam_tf.refit import PSNR_LOSS_MIN_SIGMA, negative_psnr


# Per section: (required keys, optional keys). The model section takes DeepAM's arguments.
CONFIG_KEYS = {
    "config": ({"model", "data", "epochs", "steps_per_epoch", "optimizer"},
               {"description", "loss", "l2", "backup_every_steps", "init"}),
    "data": (set(), {"task", "train", "channels", "patch_size", "batch_size", "sigma",
                     "sigma_range", "seed", "scale", "scales"}),
    "optimizer": ({"name", "learning_rate"},
                  {"momentum", "schedule", "decay_epochs", "decay_factor", "clipnorm",
                   "warmup_steps", "final_learning_rate_fraction", "ema"}),
}
TASKS = ("denoise", "depth_sr", "rgb_nir")
# The (image, guidance) channels each joint task's data has; denoising: data channels, 0.
JOINT_CHANNELS = {"depth_sr": (1, 3), "rgb_nir": (3, 1)}
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine", "step")
# The config's "loss": the paper's L1, or for a fine-tune mean squared error (what PSNR
# measures) or minus each patch's PSNR (what a mean PSNR over images weighs).
LOSSES = {"l1": "mean_absolute_error", "l2": "mean_squared_error", "psnr": negative_psnr}
AVERAGE_BATCH_NORM_PATCHES = 2048  # training patches for the averaged weights' batch-norm statistics


def load_config(path):
    """Reads and checks a training config (JSON); errors name the file."""
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder; give a config file, e.g. configs/fast_cpu.json")
    try:
        with open(path) as handle:
            config = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from None
    try:
        check_config(config)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return config


def check_config(config):
    """Raises ValueError naming the first problem of a config: a missing or unknown key
    (a misspelt option would otherwise be ignored), a non-positive count or rate, or a
    model the config's arguments cannot build."""
    import inspect

    def keys(section, name):
        label = "config" if name == "config" else f"config {name}"
        if not isinstance(section, dict):
            raise ValueError(f"{label} must be a JSON object, got {section!r}")
        required, optional = CONFIG_KEYS[name]
        if missing := sorted(required - set(section)):
            raise ValueError(f"{label} lacks {', '.join(missing)}")
        if unknown := sorted(set(section) - required - optional):
            raise ValueError(f"{label} has unknown key(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(required | optional))}")

    def bounded(section, key, label, test, wanted):
        """A number at ``section[key]`` (when there) for which ``test`` holds, or an error."""
        if key in section:
            value = section[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not test(value):
                raise ValueError(f"config {label} must be {wanted}, got {value!r}")

    def positive_integer(value):
        return isinstance(value, int) and value > 0

    keys(config, "config")
    keys(config["data"], "data")
    keys(config["optimizer"], "optimizer")
    bounded(config, "epochs", "epochs", positive_integer, "a positive integer")
    bounded(config, "steps_per_epoch", "steps_per_epoch", positive_integer, "a positive integer")
    bounded(config["optimizer"], "learning_rate", "optimizer learning_rate", lambda v: v > 0,
            "a positive number")
    loss = config.get("loss", "l1")
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"config loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    for name, known in (("name", OPTIMIZERS), ("schedule", SCHEDULES)):
        value = config["optimizer"].get(name, "constant")
        if value not in known:
            raise ValueError(f"config optimizer {name} must be one of {', '.join(known)}, got {value!r}")
    if config["optimizer"].get("schedule") == "step" and "decay_epochs" not in config["optimizer"]:
        raise ValueError("config optimizer schedule step needs decay_epochs")
    total_steps = config["epochs"] * config["steps_per_epoch"]
    opt = config["optimizer"]
    bounded(opt, "ema", "optimizer ema", lambda v: 0 < v < 1, "a decay in (0, 1), e.g. 0.999")
    bounded(opt, "momentum", "optimizer momentum", lambda v: 0 <= v < 1, "in [0, 1), e.g. 0.9")
    bounded(opt, "clipnorm", "optimizer clipnorm", lambda v: v > 0, "a positive number")
    bounded(opt, "decay_factor", "optimizer decay_factor", lambda v: 0 < v <= 1, "in (0, 1], e.g. 0.1")
    bounded(opt, "final_learning_rate_fraction", "optimizer final_learning_rate_fraction",
            lambda v: 0 <= v <= 1, "in [0, 1], e.g. 0.01")
    bounded(opt, "warmup_steps", "optimizer warmup_steps",
            lambda v: isinstance(v, int) and 0 <= v < total_steps,
            f"an integer in [0, {total_steps}) (epochs x steps_per_epoch)")
    epochs = opt.get("decay_epochs", [1])
    if not (isinstance(epochs, list) and epochs and all(isinstance(e, int) and not isinstance(e, bool)
                                                        and e > 0 for e in epochs)
            and epochs == sorted(set(epochs))):
        raise ValueError(f"config optimizer decay_epochs must be a list of increasing positive "
                         f"epochs, e.g. [10, 15], got {epochs!r}")
    bounded(config, "l2", "l2", lambda v: v >= 0, "a number >= 0 (the paper's weight decay: 5e-4)")
    bounded(config, "backup_every_steps", "backup_every_steps", positive_integer, "a positive integer")
    bounded(config["data"], "seed", "data seed", lambda v: isinstance(v, int), "an integer")
    if "init" in config and not isinstance(config["init"], str):
        raise ValueError(f"config init must be a preset name or a .keras path, got {config['init']!r}")
    spec = config["data"]
    for name in ("patch_size", "batch_size", "channels", "scale"):
        bounded(spec, name, f"data {name}", positive_integer, "a positive integer")
    task = spec.get("task", "denoise")
    if task not in TASKS:
        raise ValueError(f"config data task must be one of {', '.join(TASKS)}, got {task!r}")
    if task == "denoise" and ("train" not in spec or ("sigma" in spec) == ("sigma_range" in spec)):
        raise ValueError("config data for denoising needs train and one of sigma, sigma_range")
    if task == "depth_sr" and "scale" not in spec:
        raise ValueError("config data for depth_sr needs scale")
    if task != "depth_sr" or "scales" in spec:
        try:
            degradation = degradation_for(config)
            if "scales" in spec:
                data.check_scales(spec["scales"], degradation)
        except ValueError as error:
            raise ValueError(f"config data {error}") from None
    if task == "denoise" and loss == "psnr":
        key = "sigma" if "sigma" in spec else "sigma_range"
        if np.min(spec[key]) < PSNR_LOSS_MIN_SIGMA:
            raise ValueError("config loss psnr weighs each patch by 1 / its error, so nearly "
                             f"noise-free patches would dominate it: data {key} must be "
                             f"{PSNR_LOSS_MIN_SIGMA} or more, got {spec[key]!r}")
    model = config["model"]
    if not isinstance(model, dict):
        raise ValueError(f"config model must be a JSON object of DeepAM arguments, got {model!r}")
    arguments = set(inspect.signature(DeepAM.__init__).parameters) - {"self", "kwargs", "kernel_regularizer"}
    if unknown := sorted(set(model) - arguments):
        raise ValueError(f"config model has unknown argument(s) {', '.join(unknown)}; "
                         f"DeepAM takes {', '.join(sorted(arguments))}")
    try:
        built = DeepAM(**model)
    except (TypeError, ValueError) as error:
        raise ValueError(f"config model cannot be built: {error}") from None
    wanted = JOINT_CHANNELS.get(task, (spec.get("channels", 1), 0))
    if (built.channels, built.guidance_channels) != wanted:
        raise ValueError(
            f"config model has channels={built.channels}, guidance_channels="
            f"{built.guidance_channels}, but the {task} data gives {wanted[0]} image and "
            f"{wanted[1]} guidance channel(s)" + (" (data channels)" if task == "denoise" else ""))


def build_model(config):
    """The DeepAM of a config, with the config's coupled L2 on every kernel, started
    from ``init``."""
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


def learning_rate(config):
    """The config's learning rate: a constant, or a cosine or step schedule of the step."""
    opt = config["optimizer"]
    total_steps = config["epochs"] * config["steps_per_epoch"]
    rate = opt["learning_rate"]
    schedule = opt.get("schedule", "constant")
    if schedule in ("cosine", "constant") and opt.get("warmup_steps"):
        # Linear warm-up from 0 (fresh Adam moments on trained weights), then a cosine
        # decay; a constant rate is a decay to 100% of itself.
        alpha = opt.get("final_learning_rate_fraction", 0.0) if schedule == "cosine" else 1.0
        warmup = opt["warmup_steps"]
        rate = keras.optimizers.schedules.CosineDecay(
            0.0, total_steps - warmup, alpha=alpha, warmup_target=rate, warmup_steps=warmup
        )
    elif schedule == "cosine":
        alpha = opt.get("final_learning_rate_fraction", 0.0)
        rate = keras.optimizers.schedules.CosineDecay(rate, total_steps, alpha=alpha)
    elif schedule == "step":
        boundaries = [e * config["steps_per_epoch"] for e in opt["decay_epochs"]]
        values = [rate * opt.get("decay_factor", 0.1) ** i for i in range(len(boundaries) + 1)]
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    elif schedule != "constant":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}")
    return rate


def build_optimizer(config):
    """SGD (momentum) or Adam with the config's :func:`learning_rate`."""
    opt = config["optimizer"]
    common = dict(learning_rate=learning_rate(config), clipnorm=opt.get("clipnorm"))
    if "ema" in opt:
        common.update(use_ema=True, ema_momentum=opt["ema"])
    if opt["name"] == "sgd":
        return keras.optimizers.SGD(momentum=opt.get("momentum", 0.9), **common)
    if opt["name"] == "adam":
        return keras.optimizers.Adam(**common)
    raise ValueError(f"optimizer name must be one of {', '.join(OPTIMIZERS)}, got {opt['name']!r}")


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
    # Every file is read once first: inside tf.data a file that cannot be read stops the
    # run mid-epoch with an error that names no file.
    if task == "denoise":
        files, channels = data.list_images(os.path.join(root, spec["train"])), spec.get("channels", 1)
        _check_patch_size(files, data.check_images(files, channels), spec)
        return data.image_dataset(files, channels)
    if task not in JOINT_CHANNELS:
        raise ValueError(f"unknown task {task!r} in the config's data section")
    pairs = splits.depth_train_pairs(root) if task == "depth_sr" else splits.rgb_nir_pairs(root, "train")
    sizes = data.check_pairs(pairs, *JOINT_CHANNELS[task])
    _check_patch_size([image for image, _ in pairs], sizes, spec)
    return data.paired_dataset(pairs, *JOINT_CHANNELS[task])


def _check_patch_size(files, sizes, spec):
    """ValueError naming the smallest training image when it cannot hold a patch."""
    patch_size = spec.get("patch_size", 32)
    size, path = min(zip(sizes, files), key=lambda entry: min(entry[0]))
    if min(size) < patch_size:
        raise ValueError(f"config data patch_size {patch_size} does not fit in {path} "
                         f"({size[0]}x{size[1]}), the smallest training image")
    scale = min(spec.get("scales", [1]))
    if int(data.rescaled_size(min(size), scale)) < patch_size:
        raise ValueError(f"config data patch_size {patch_size} does not fit in {path} "
                         f"({size[0]}x{size[1]}, the smallest training image) resized by "
                         f"{scale:g}, the smallest of data scales")


def train_dataset(config, data_root=None):
    """The infinite training batches of a config."""
    spec = config["data"]
    return data.patch_dataset(
        train_samples(config, data_root),
        degradation_for(config),
        patch_size=spec.get("patch_size", 32),
        batch_size=spec.get("batch_size", 16),
        seed=spec.get("seed", 0),
        scales=spec.get("scales"),
    )


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' callback, resumed in the epoch of the step its backup holds. Keras 3 takes
    the epoch from the backup's metadata, which is the last finished epoch (or 0 in
    backups written after a resume, before the next epoch end), and reruns that epoch
    whole; here the epoch is the optimizer's step count over ``steps_per_epoch``, and
    :class:`EpochsBySteps` ends it at its last step."""

    def __init__(self, backup_dir, steps_per_epoch, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.steps_per_epoch = steps_per_epoch

    def _load_model(self):
        super()._load_model()
        if os.path.exists(self._weights_path):
            self.model._initial_epoch = int(self.model.optimizer.iterations.numpy()) // self.steps_per_epoch

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._current_epoch = getattr(self.model, "_initial_epoch", None) or 0


class EpochsBySteps(keras.callbacks.Callback):
    """Keeps epochs on step boundaries: epoch ``e`` ends after step ``(e + 1) *
    steps_per_epoch`` of the optimizer, also when a resumed run starts inside it, and
    training ends after ``steps``. Without it a resumed epoch would rerun all its steps
    and overrun the schedule, and later epochs would end off their boundaries."""

    def __init__(self, steps, steps_per_epoch):
        super().__init__()
        self.steps, self.steps_per_epoch = steps, steps_per_epoch
        self._epoch_cut = False

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step >= self.steps:
            self.model.stop_training = True
        elif step % self.steps_per_epoch == 0 and batch + 1 < self.steps_per_epoch and not self.model.stop_training:
            self.model.stop_training = self._epoch_cut = True  # ends the epoch; on_epoch_end goes on

    def on_epoch_end(self, epoch, logs=None):
        if self._epoch_cut:
            self.model.stop_training = self._epoch_cut = False


def recompute_batch_norm(model, batches):
    """Sets every batch-norm layer's moving mean and variance to the mean of its batch
    statistics over ``batches`` (``(inputs, targets)`` pairs), as stochastic weight
    averaging does for averaged weights: the moving statistics of the run that was
    averaged belong to its last weights, not to the average."""
    layers = [layer for layer in model.batch_norm_layers() if layer.trainable]  # frozen ones keep theirs
    momenta = [layer.momentum for layer in layers]
    try:
        for count, (inputs, _) in enumerate(batches):
            for layer in layers:
                layer.momentum = count / (count + 1.0)  # a running mean of the batches
            model(inputs, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def batch_norm_batches(config, data_root=None):
    """Fixed training batches for :func:`recompute_batch_norm`:
    ``AVERAGE_BATCH_NORM_PATCHES`` patches of the config's data in batches of 256,
    drawn apart from its training stream (the next seed)."""
    size = 256
    spec = config["data"]
    other = {**config, "data": {**spec, "batch_size": size, "seed": spec.get("seed", 0) + 1}}
    return list(train_dataset(other, data_root).take(-(-AVERAGE_BATCH_NORM_PATCHES // size)))


class SaveAverage(keras.callbacks.Callback):
    """Writes the model with the optimizer's moving average of its weights (``use_ema``)
    and batch-norm statistics recomputed for them on ``batches`` after every epoch, then
    puts the trained weights and statistics back; at the end of training (when ``fit``
    has put the average into the model), recomputes the model's statistics the same way."""

    def __init__(self, filepath, batches):
        super().__init__()
        self.filepath = filepath
        self.batches = batches

    def on_epoch_end(self, epoch, logs=None):
        variables = self.model.trainable_variables + [
            v for layer in self.model.batch_norm_layers() for v in layer.non_trainable_variables]
        trained = [v.numpy() for v in variables]
        self.model.optimizer.finalize_variable_values(self.model.trainable_variables)
        recompute_batch_norm(self.model, self.batches)
        self.model.save(self.filepath)
        for variable, value in zip(variables, trained):
            variable.assign(value)

    def on_train_end(self, logs=None):
        recompute_batch_norm(self.model, self.batches)


def _check_output_dir(config, output_dir):
    """Refuses an output folder whose run another training would clobber: a run of a
    different config, or a finished run (its model.keras and no backup left to resume)."""
    saved = os.path.join(output_dir, "config.json")
    if os.path.exists(saved):
        with open(saved) as handle:
            previous = json.load(handle)
        ours = json.loads(json.dumps(config))
        if ours != previous:
            changed = sorted(k for k in set(ours) | set(previous) if ours.get(k) != previous.get(k))
            raise ValueError(f"{output_dir} holds a run of another config (differs in "
                             f"{', '.join(changed)}); resume it with its own config.json or "
                             f"train into another folder")
    if os.path.exists(os.path.join(output_dir, "model.keras")) and not os.path.exists(
            os.path.join(output_dir, "backup")):
        raise ValueError(f"{output_dir} holds a finished run (model.keras); train into "
                         f"another folder")


def train(config, output_dir, data_root=None, verbose=1, epochs=None):
    """Trains (or resumes) the config's model into ``output_dir``; returns the model
    (with ``optimizer.ema``: the averaged weights, as Keras' ``fit`` ends, with their
    batch-norm statistics recomputed, as in ``model_ema.keras``). The config is checked
    (:func:`check_config`) and the folder refused if it holds a finished run or a run
    of another config, before anything is written.

    ``epochs`` overrides the config's epoch count (the schedule keeps the config's
    length, so a shortened run is a prefix of the full one).
    """
    check_config(config)
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ValueError(f"epochs must be a positive integer (or None: the config's), got {epochs!r}")
    _check_output_dir(config, output_dir)
    model = build_model(config)
    model.compile(optimizer=build_optimizer(config), loss=LOSSES[config.get("loss", "l1")],
                  jit_compile=False)
    dataset = train_dataset(config, data_root)
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "config.json"), "w") as handle:
        json.dump(config, handle, indent=2)
    callbacks = [
        BackupAndRestore(os.path.join(output_dir, "backup"), config["steps_per_epoch"],
                         save_freq=config.get("backup_every_steps", "epoch")),
        keras.callbacks.ModelCheckpoint(os.path.join(output_dir, "model.keras")),
        keras.callbacks.TensorBoard(os.path.join(output_dir, "logs"), profile_batch=0),
        keras.callbacks.CSVLogger(os.path.join(output_dir, "history.csv"), append=True),
        EpochsBySteps((epochs or config["epochs"]) * config["steps_per_epoch"], config["steps_per_epoch"]),
    ]
    if "ema" in config["optimizer"]:
        batches = [] if model.freeze_batch_norm else batch_norm_batches(config, data_root)
        callbacks.insert(2, SaveAverage(os.path.join(output_dir, "model_ema.keras"), batches))
    model.fit(
        dataset,
        epochs=epochs or config["epochs"],
        steps_per_epoch=config["steps_per_epoch"],
        shuffle=False,  # the patch stream draws its own random crops
        callbacks=callbacks,
        verbose=verbose,
    )
    return model
