"""Where a run starts: the raw base or the user's neutral model, and the model loaded from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.common.bases import base_identity, resolve_base
from trainer.common.emotions import NEUTRAL
from trainer.common.errors import PoetstudioError, first_line
from trainer.common.home import DataHome
from trainer.common.textformat import PoemTokens
from trainer.training.config import DEFAULT_BASE, TrainConfig
from trainer.training.manifest import load_manifest

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class StartPoint:
    """Where a run starts: the raw base, and optionally the neutral model it builds on."""

    base_spec: str
    parent_dir: Path | None = None
    parent: dict[str, Any] | None = None  # the parent's manifest summary, for the lineage
    # The parent's recorded poem ids: a child keeps them, so the lineage stops where it learned to.
    poem_tokens: dict[str, Any] | None = None

    def tokens(self, tokenizer: PreTrainedTokenizerBase) -> PoemTokens:
        """The poem ids this run trains with."""
        return PoemTokens.recorded({"poem_tokens": self.poem_tokens}, tokenizer)


def plan_start(config: TrainConfig, home: DataHome) -> StartPoint:
    """Decide the base and parent: neutral starts from the base; other emotions from neutral.

    An emotion starts from the user's neutral model when one exists, was trained on the same base,
    and can seed this method: a neutral LoRA seeds a LoRA (its weights are the starting point, so
    the new adapter still applies to the raw base) or a full fine-tune (merged first); a full
    neutral model seeds only a full fine-tune.
    """
    if config.emotion == NEUTRAL or config.from_base:
        return StartPoint(config.base or DEFAULT_BASE)
    neutral_dir = home.models / NEUTRAL
    manifest = load_manifest(neutral_dir)
    if manifest is None:
        return StartPoint(config.base or DEFAULT_BASE)
    neutral_base = manifest.base_spec or ""
    base_spec = config.base or neutral_base or DEFAULT_BASE
    same_base = base_identity(base_spec, home)["spec"] == base_identity(neutral_base, home)["spec"]
    usable = manifest.method == "lora" or config.method == "full"
    if not (same_base and usable and neutral_base):
        return StartPoint(base_spec)
    parent = {
        "emotion": NEUTRAL,
        "method": manifest.method,
        "job": manifest.job,
        "best_val_loss": manifest.best_val_loss,
        "parent": manifest.parent,
    }
    return StartPoint(base_spec, neutral_dir, parent, manifest.poem_tokens)


def load_model(
    config: TrainConfig, start: StartPoint, home: DataHome
) -> tuple[PreTrainedTokenizerBase, Any]:
    """Load tokenizer and model for training in fp32, with LoRA adapters when asked."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_base(start.base_spec, home)
    parent_method = (start.parent or {}).get("method")
    if parent_method == "full":
        source = str(start.parent_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        # No attn_implementation: transformers 5 picks SDPA where the architecture supports it
        # and falls back to eager where not, while asking for "sdpa" would fail there.
        # A transformers model, then maybe peft's wrapper: neither library types that swap.
        model: Any = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise PoetstudioError(
            f"cannot load base model {start.base_spec!r}: {first_line(exc)}"
        ) from None
    if tokenizer.eos_token_id is None:
        raise PoetstudioError(f"base {start.base_spec!r} has no eos token; poems need one to end")
    if parent_method == "lora":
        from peft import PeftModel

        model = PeftModel.from_pretrained(
            model, str(start.parent_dir), is_trainable=config.method == "lora"
        )
        if config.method == "full":
            model = model.merge_and_unload()
    elif config.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.alpha,
            lora_dropout=config.lora_dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    return tokenizer, model


def attention_of(model: PreTrainedModel) -> str | None:
    """The attention implementation the model runs with ("sdpa", "eager", ...)."""
    return getattr(model.config, "_attn_implementation", None)
