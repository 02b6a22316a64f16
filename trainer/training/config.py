"""The settings of one training run, and how they are read from `poetstudio train` arguments.

The CLI, the studio and the background job process all describe a run as the same argument list,
so the one parser lives here, next to the dataclass it fills.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from trainer.common.emotions import check_emotion
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.common.precision import PRECISIONS

DEFAULT_BASE = "smollm2-135m"
METHODS = ("lora", "full")
# Learning rates that suit each method when the user names none.
DEFAULT_LR = {"lora": 3e-4, "full": 5e-5}
# Bounds that keep a run meaningful. Below LR_RANGE[0] (or with a schedule so long that warm-up
# alone outlasts any run) the weights barely move, and an untrained model would replace a good one.
LR_RANGE = (1e-7, 1.0)
MAX_STEPS = 1_000_000
MAX_EPOCHS = 1000.0
MAX_WEIGHT_DECAY = 1.0
MAX_CLIP = 1e6
# Training seeds the batch order with seed * 1000 + epoch, which torch needs below 2**64.
SEED_LIMIT = 2**32
# Sizes and intervals: any more than this is a typo, and would overflow tensors or memory.
MAX_COUNT = 1_000_000
_COUNTS = ("batch_size", "block_size", "grad_accum", "lora_rank", "eval_every", "eval_blocks")
_COUNTS += ("checkpoint_every", "patience", "max_words")


@dataclass
class TrainConfig:
    """Everything that decides what a training run does; stored in the job folder for `--resume`."""

    emotion: str
    base: str | None = None  # None: the neutral model's base, else DEFAULT_BASE
    method: str = "lora"
    dataset: str = "clean"
    from_base: bool = False  # ignore the neutral model and start from the raw base
    device: str | None = None
    precision: str = "auto"  # autocast dtype; see trainer/common/precision.py
    max_steps: int | None = None
    epochs: float = 4.0
    lr: float | None = None
    batch_size: int = 8
    block_size: int = 128
    grad_accum: int = 1
    warmup: float = 0.05  # share of all steps spent warming up
    weight_decay: float = 0.0
    clip: float = 1.0
    lora_rank: int = 16
    lora_alpha: int | None = None  # None: twice the rank
    # No dropout by default: on the CPU its masks cost about 1 GB at batch 8 x 128 and slow each
    # step, and short runs gain little from it.
    lora_dropout: float = 0.0
    eval_every: int = 50
    eval_blocks: int = 64  # validation blocks per evaluation, so an eval stays cheap
    patience: int = 3  # evaluations without improvement before stopping early
    checkpoint_every: int = 50
    seed: int = 1234
    max_words: int = 100

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
        if self.precision not in PRECISIONS:
            raise PoetstudioError(
                f"unknown precision {self.precision!r}; choose one of: {', '.join(PRECISIONS)}"
            )
        if self.method not in METHODS:
            raise PoetstudioError(f"unknown method {self.method!r}; choose one of: lora, full")
        _check_dataset_name(self.dataset)
        positive = ("batch_size", "block_size", "grad_accum", "lora_rank", "eval_every")
        positive += ("checkpoint_every", "max_words", "eval_blocks")
        for name in positive:
            if getattr(self, name) < 1:
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
        if not 0 <= self.warmup < 1:
            raise PoetstudioError("--warmup is a share of the steps, at least 0 and below 1")
        if not 0 <= self.seed < SEED_LIMIT:
            raise PoetstudioError(f"--seed must be a whole number from 0 to {SEED_LIMIT - 1}")
        too_big = [name for name in _COUNTS if getattr(self, name) > MAX_COUNT]
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
    from trainer.training.loop import plan_start

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


def _check_dataset_name(name: str) -> None:
    if not name or any(sep in name for sep in ("/", "\\", "..")) or name.startswith("."):
        raise PoetstudioError(f"refusing path-like dataset name {name!r}; use a name like 'clean'")


@dataclass
class TrainRequest:
    """A parsed `train` argument list: the run's config plus how to run it."""

    config: TrainConfig
    resume: bool = False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poetstudio train", add_help=False, exit_on_error=False)
    parser.add_argument("--resume", action="store_true")
    for spec in fields(TrainConfig):
        flag = "--" + spec.name.replace("_", "-")
        if spec.type == "bool":
            parser.add_argument(flag, dest=spec.name, action="store_true")
            continue
        kind = {"int": int, "float": float}.get(str(spec.type).split(" ")[0], str)
        parser.add_argument(flag, dest=spec.name, type=kind, default=None)
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
        spec.name: getattr(parsed, spec.name)
        for spec in fields(TrainConfig)
        if getattr(parsed, spec.name) is not None and getattr(parsed, spec.name) is not False
    }
    if "emotion" not in values:
        raise PoetstudioError("name the emotion to train, e.g. --emotion trust")
    return TrainRequest(TrainConfig(**values).validate(), resume=parsed.resume)


def config_to_args(config: TrainConfig) -> list[str]:
    """The argument list that `parse_train_args` turns back into `config`."""
    args: list[str] = []
    defaults = TrainConfig(emotion=config.emotion)
    for spec in fields(TrainConfig):
        value = getattr(config, spec.name)
        flag = "--" + spec.name.replace("_", "-")
        if spec.name != "emotion" and value == getattr(defaults, spec.name):
            continue
        if isinstance(value, bool):
            args.append(flag)
        else:
            args += [flag, str(value)]
    return args
