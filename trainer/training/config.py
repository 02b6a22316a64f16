"""The settings of one training run, and how they are read from `poetstudio train` arguments.

The CLI, the studio and the background job process all describe a run as the same argument list,
so the one parser lives here, next to the dataclass it fills.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from trainer.common.emotions import MODEL_EMOTIONS, check_emotion
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.common.precision import check_precision
from trainer.corpus.dataset import check_dataset_name
from trainer.training.manifest import METHODS

DEFAULT_BASE = "smollm2-135m"
# Learning rates that suit each method when the user names none.
DEFAULT_LR = {"lora": 3e-4, "full": 5e-5}
# Bounds that keep a run meaningful. Below LR_RANGE[0] (or with a schedule so long that warm-up
# alone outlasts any run) the weights barely move, and an untrained model would replace a good one.
LR_RANGE = (1e-7, 1.0)
MAX_STEPS = 1_000_000
MAX_EPOCHS = 1000.0
MAX_WEIGHT_DECAY = 1.0
MAX_CLIP = 1e6
# Training seeds the batch order with seed * 1000 + epoch, which torch needs below 2**64 (generation
# seeds have their own limit: studio/core/generation/settings.py SEED_LIMIT).
TRAIN_SEED_LIMIT = 2**32
# Sizes and intervals: any more than this is a typo, and would overflow tensors or memory.
MAX_COUNT = 1_000_000
# Blocks per micro-batch where no device memory decides it (trainer/training/batchsize.py).
DEFAULT_BATCH = 8
COMPILE_CHOICES = ("auto", "on", "off")
_COUNTS: tuple[str, ...] = (
    "batch_size",
    "block_size",
    "grad_accum",
    "lora_rank",
    "eval_every",
    "eval_blocks",
)
_COUNTS += ("checkpoint_every", "patience", "max_words", "nproc")


def option(
    default: Any, help: str, *, default_help: str | None = None, resume_safe: bool = False
) -> Any:
    """A TrainConfig field that is also a `poetstudio train` option, with its help text.

    Every field of TrainConfig is an option named after it (`max_steps` is `--max-steps`; a
    switch that defaults to True is `--no-<name>`), so a new field needs only this call.
    `default_help` replaces the default shown in the help when the value alone would mislead
    (None standing for "the method's default"); `resume_safe` lets `--resume` change it.
    """
    meta = {"help": help, "default_help": default_help, "resume_safe": resume_safe}
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything that decides what a training run does; stored in the job folder for `--resume`.

    Each field is a `poetstudio train` option, made with `option` (see `train_options`).
    """

    emotion: str = field(metadata={"help": "Emotion to train: " + ", ".join(MODEL_EMOTIONS)})
    base: str | None = option(
        None,
        f"Base model: {DEFAULT_BASE} (offline), gpt2, a Hub id or a folder.",
        default_help=f"the neutral model's base, else {DEFAULT_BASE}",
    )
    method: str = option("lora", "lora (small adapters) or full.")
    dataset: str = option("clean", "Dataset name.")
    from_base: bool = option(False, "Start from the raw base even if a neutral model exists.")
    device: str | None = option(
        None, "cuda, mps or cpu.", default_help="the best present", resume_safe=True
    )
    precision: str = option(
        "auto",
        "The autocast dtype: auto, fp32, bf16 or fp16.",
        default_help="auto, bf16 where the hardware has it",
    )
    max_steps: int | None = option(None, "Optimizer steps (replaces --epochs).")
    epochs: float = option(4.0, "Passes over the data.")
    lr: float | None = option(
        None,
        "Peak learning rate.",
        default_help=", ".join(f"{rate:g} {name}" for name, rate in DEFAULT_LR.items()),
    )
    batch_size: int | None = option(
        None,
        "Blocks per micro-batch.",
        default_help=f"{DEFAULT_BATCH} on the CPU and MPS; on CUDA, what fits the GPU's memory",
    )
    block_size: int = option(128, "Tokens per block.")
    grad_accum: int = option(1, "Micro-batches per optimizer step.")
    warmup: float = option(0.05, "Share of steps spent warming up.")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    clip: float = option(1.0, "Gradient-norm clipping threshold.")
    lora_rank: int = option(16, "LoRA rank.")
    lora_alpha: int | None = option(None, "LoRA scaling numerator.", default_help="twice the rank")
    # No dropout by default: on the CPU its masks cost about 1 GB at batch 8 x 128 and slow each
    # step, and short runs gain little from it.
    lora_dropout: float = option(0.0, "LoRA dropout share.")
    eval_every: int = option(50, "Evaluate every N steps.")
    # Validation blocks per evaluation, so an eval stays cheap.
    eval_blocks: int = option(64, "Validation blocks per evaluation.")
    patience: int = option(3, "Evaluations without improvement before stopping (0: never).")
    checkpoint_every: int = option(50, "Checkpoint every N steps.")
    seed: int = option(1234, "Random seed.")
    max_words: int = option(100, "Longest poem used, in words.")
    # Resume-safe: compiled and plain runs read each other's checkpoints.
    compile: str = option(
        "auto",
        "torch.compile the model: auto (on for CUDA), on or off.",
        default_help="auto, on for CUDA",
        resume_safe=True,
    )
    # Resume-safe: a job may continue on another number of ranks (the data order is global).
    nproc: int = option(
        1,
        "Processes (ranks) to train with, through torchrun: one GPU each on CUDA, gloo on the "
        "CPU. --batch-size is the micro-batch of all of them together.",
        resume_safe=True,
    )

    @property
    def learning_rate(self) -> float:
        """The learning rate asked for, or the method's default."""
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]

    @property
    def alpha(self) -> int:
        """LoRA's scaling numerator."""
        return self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_rank

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild a config saved with `to_dict`, ignoring keys a newer version dropped."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def validate(self) -> TrainConfig:
        """Check ranges and names; raise a one-line error for the first bad one."""
        self.emotion = check_emotion(self.emotion)
        check_precision(self.precision)
        if self.method not in METHODS:
            raise PoetstudioError(
                f"unknown method {self.method!r}; choose one of: {', '.join(METHODS)}"
            )
        check_dataset_name(self.dataset)
        positive: tuple[str, ...] = (
            "batch_size",
            "block_size",
            "grad_accum",
            "lora_rank",
            "eval_every",
        )
        positive += ("checkpoint_every", "max_words", "eval_blocks", "nproc")
        for name in positive:
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise PoetstudioError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_steps is not None and not 1 <= self.max_steps <= MAX_STEPS:
            raise PoetstudioError(f"--max-steps must be from 1 to {MAX_STEPS:,}")
        # NaN fails every comparison, so each range is written as "inside", never as "outside".
        if not 0 < self.epochs <= MAX_EPOCHS:
            raise PoetstudioError(f"--epochs must be a number above 0 and at most {MAX_EPOCHS:g}")
        if not LR_RANGE[0] <= self.learning_rate <= LR_RANGE[1]:
            raise PoetstudioError(
                f"--lr must be a number from {LR_RANGE[0]:g} to {LR_RANGE[1]:g}, "
                f"not {self.learning_rate:g}; the default for {self.method} is "
                f"{DEFAULT_LR[self.method]:g}"
            )
        if not 0 <= self.weight_decay <= MAX_WEIGHT_DECAY:
            raise PoetstudioError(f"--weight-decay must be a number from 0 to {MAX_WEIGHT_DECAY:g}")
        if not 0 < self.clip <= MAX_CLIP:
            raise PoetstudioError(f"--clip must be a number above 0 and at most {MAX_CLIP:g}")
        if not 0 <= self.lora_dropout < 1:
            raise PoetstudioError("--lora-dropout must be a share, at least 0 and below 1")
        if self.lora_alpha is not None and self.lora_alpha < 1:
            raise PoetstudioError("--lora-alpha must be at least 1")
        if self.patience < 0:
            raise PoetstudioError("--patience must be 0 (never stop early) or more")
        if self.block_size < 8:
            raise PoetstudioError("--block-size must be at least 8 tokens")
        if self.batch_size is not None and self.batch_size < self.nproc:
            raise PoetstudioError(
                f"--batch-size {self.batch_size} is shared by --nproc {self.nproc} ranks; give "
                f"at least {self.nproc}, one block per rank"
            )
        if self.compile not in COMPILE_CHOICES:
            raise PoetstudioError(
                f"--compile must be one of {', '.join(COMPILE_CHOICES)}, not {self.compile!r}"
            )
        if not 0 <= self.warmup < 1:
            raise PoetstudioError("--warmup is a share of the steps, at least 0 and below 1")
        if not 0 <= self.seed < TRAIN_SEED_LIMIT:
            raise PoetstudioError(f"--seed must be a whole number from 0 to {TRAIN_SEED_LIMIT - 1}")
        too_big = [name for name in _COUNTS if (getattr(self, name) or 0) > MAX_COUNT]
        if too_big:
            flag = "--" + too_big[0].replace("_", "-")
            raise PoetstudioError(f"{flag} must be at most {MAX_COUNT:,}")
        return self


# Where causal LM configs give their context length, by model family.
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "seq_length")
# The presets' published context lengths, for a base that is not fetched or converted yet.
_PRESET_CONTEXT = {"smollm2-135m": 8192, "gpt2": 1024}


def model_context(config_file: Path) -> int | None:
    """The context length, in tokens, that a model's config.json gives; None when it gives none.

    Only the JSON is read, never the weights, so this is cheap enough to run before a job starts.
    """
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    for key in _CONTEXT_KEYS:
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _config_file(spec: str, home: DataHome) -> Path | None:
    """The config.json of base `spec` if it is on this machine (no download, no conversion)."""
    from trainer.common.bases import HUB_PRESETS, WHEEL_PRESETS, base_folder

    if spec in WHEEL_PRESETS:
        return base_folder(home, WHEEL_PRESETS[spec]) / "config.json"
    folder = Path(spec).expanduser()
    if folder.is_dir():
        return folder / "config.json"
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(HUB_PRESETS.get(spec, spec), "config.json")
    except Exception:  # noqa: BLE001 - an odd id or cache layout just means "not known here"
        return None
    return Path(found) if isinstance(found, str) else None


def check_block_size(config: TrainConfig, home: DataHome) -> None:
    """Refuse a --block-size longer than the context of the model the run will start from.

    The start is the one the training loop will pick (the neutral model's base for an emotion),
    and its context is read from config.json alone; an unknown context is left to the run.
    """
    from trainer.training.start import plan_start

    start = plan_start(config, home)
    if (start.parent or {}).get("method") == "full" and start.parent_dir is not None:
        context = model_context(start.parent_dir / "config.json")
    else:
        found = _config_file(start.base_spec, home)
        context = model_context(found) if found is not None else None
    context = context or _PRESET_CONTEXT.get(start.base_spec)
    if context is not None and config.block_size > context:
        raise PoetstudioError(
            f"--block-size {config.block_size} is longer than the context of base "
            f"{start.base_spec!r} ({context} tokens); use at most {context}"
        )


@dataclass(frozen=True)
class TrainOption:
    """One `poetstudio train` option, derived from a TrainConfig field."""

    name: str  # the field
    flag: str  # --max-steps; a switch is --<name>, or --no-<name> when it defaults to True
    kind: type  # int, float, str or bool (a switch)
    help: str  # the field's help with its default
    default: Any
    resume_safe: bool  # `--resume` may change it (the others must match the job's)


def train_options(config_class: type[TrainConfig] = TrainConfig) -> tuple[TrainOption, ...]:
    """The options of `poetstudio train`, one per TrainConfig field, in field order."""
    hints = get_type_hints(config_class)
    options = []
    for spec in fields(config_class):
        # `int | None` is an int option; None means "not given" on the command line.
        kinds = getattr(hints[spec.name], "__args__", (hints[spec.name],))
        kind = next(kind for kind in kinds if kind is not type(None))
        default = None if spec.default is MISSING else spec.default
        name = spec.name.replace("_", "-")
        flag = f"--no-{name}" if kind is bool and default else f"--{name}"
        shown = spec.metadata.get("default_help") or _default_text(kind, default)
        text = spec.metadata.get("help", "")
        options.append(
            TrainOption(
                name=spec.name,
                flag=flag,
                kind=kind,
                help=f"{text} (default: {shown})" if shown else text,
                default=default,
                resume_safe=bool(spec.metadata.get("resume_safe")),
            )
        )
    return tuple(options)


def _default_text(kind: type, default: Any) -> str | None:
    """A default as the help shows it; None for a switch or a default that means "unset"."""
    if kind is bool or default is None:
        return None
    return f"{default:g}" if isinstance(default, float) else str(default)


def options_to_args(values: dict[str, Any]) -> list[str]:
    """The argument list for option values by field name; a switch is given when it differs
    from its default, and None means "not given"."""
    args: list[str] = []
    for opt in train_options():
        value = values.get(opt.name)
        if value is None:
            continue
        if opt.kind is bool:
            if bool(value) != bool(opt.default):
                args.append(opt.flag)
        else:
            args += [opt.flag, str(value)]
    return args


class ResumeConflict(PoetstudioError):
    """`--resume` was given an option that differs from the job's own settings."""


@dataclass
class TrainRequest:
    """A parsed `train` argument list: the run's config plus how to run it."""

    config: TrainConfig
    resume: bool = False
    given: frozenset[str] = frozenset()  # the fields named on the command line

    def check_resume(self, job_config: TrainConfig) -> None:
        """Refuse options that would change the job being resumed, except the resume-safe ones.

        A resumed job continues with the settings it was started with (its checkpoint and its
        schedule depend on them), so repeating an option with the same value is fine and a
        different value is a one-line ResumeConflict.
        """
        for opt in train_options():
            if opt.name not in self.given or opt.resume_safe or opt.name == "emotion":
                continue
            asked, had = getattr(self.config, opt.name), getattr(job_config, opt.name)
            if asked != had:
                safe = ", ".join(o.flag for o in train_options() if o.resume_safe)
                raise ResumeConflict(
                    f"--resume continues the job with its own settings, but {opt.flag} "
                    f"{_shown(asked)} differs from its {_shown(had)}; drop {opt.flag} "
                    f"(only {safe} may change on resume) or start a new job without --resume"
                )

    def resume_overrides(self) -> dict[str, Any]:
        """The resume-safe options given, but --device: they change the job being resumed.

        The device is kept apart (the job file's `device`) so that it holds for one run only.
        """
        return {
            opt.name: getattr(self.config, opt.name)
            for opt in train_options()
            if opt.resume_safe and opt.name in self.given and opt.name != "device"
        }


def _shown(value: Any) -> str:
    return "on" if value is True else "off" if value is False else str(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poetstudio train", add_help=False, exit_on_error=False)
    parser.add_argument("--resume", action="store_true")
    for opt in train_options():
        if opt.kind is bool:
            # None stands for "not given", so `given` and the defaults stay in TrainConfig.
            parser.add_argument(
                opt.flag, dest=opt.name, action="store_const", const=not opt.default
            )
        else:
            parser.add_argument(opt.flag, dest=opt.name, type=opt.kind, default=None)
    return parser


def parse_train_args(args: list[str]) -> TrainRequest:
    """Parse `poetstudio train` arguments (without --detach/--all) into a validated request."""
    try:
        parsed, extra = _parser().parse_known_args(args)
    except (argparse.ArgumentError, SystemExit) as exc:
        raise PoetstudioError(f"bad training arguments: {exc}") from None
    if extra:
        raise PoetstudioError(f"unknown training arguments: {' '.join(extra)}")
    values = {
        opt.name: getattr(parsed, opt.name)
        for opt in train_options()
        if getattr(parsed, opt.name) is not None
    }
    if "emotion" not in values:
        raise PoetstudioError("name the emotion to train, e.g. --emotion trust")
    return TrainRequest(
        TrainConfig(**values).validate(), resume=parsed.resume, given=frozenset(values)
    )


def config_to_args(config: TrainConfig) -> list[str]:
    """The argument list that `parse_train_args` turns back into `config`."""
    defaults = TrainConfig(emotion=config.emotion)
    values = {
        spec.name: getattr(config, spec.name)
        for spec in fields(TrainConfig)
        if spec.name == "emotion" or getattr(config, spec.name) != getattr(defaults, spec.name)
    }
    return options_to_args(values)
