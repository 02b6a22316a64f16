"""Tiny models built offline in seconds: a GPT-2 base with its tokenizer, LoRA adapters and full
models, each with the manifest poetstudio writes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from peft import LoraConfig
    from transformers import PreTrainedTokenizerFast

    from studio.core.generation.poet import Poet
    from studio.core.generation.settings import SamplingParams
    from studio.core.generation.stats import GenerationStats
    from trainer.common.home import DataHome

VERSES = """The lamps are out along the quay,
and the grey sea sighs beneath the stars.
O weep for the friend that is gone,
his grave is cold beneath the rain.
Joy comes laughing over the green hill,
the morning sings and the bells ring sweet.
I fear the dark wood and the howling wind,
the night is full of terror and of dread.
Trust in the faithful heart that keeps its vow,
the true friend stands beside me to the end.
"""
EOT = "<|endoftext|>"
# The adapters a guided or blended poem needs, and the seed each one's weights are drawn from.
GUIDED_ADAPTERS = (("neutral", 3), ("joy", 1), ("sadness", 2))


def write_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    """Write a byte-level BPE tokenizer trained on a few verses into `folder` (made here)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([VERSES] * 20, vocab_size=400, min_frequency=1, special_tokens=[EOT])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=EOT, eos_token=EOT, unk_token=EOT
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_tiny_base(folder: Path, seed: int = 0) -> Path:
    """Write a tiny random GPT-2 and a byte-level BPE tokenizer trained on a few verses."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = write_tokenizer(folder)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=256,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def write_lora(
    base_dir: Path, out_dir: Path, emotion: str, config: LoraConfig, seed: int, spread: float
) -> Path:
    """Write a LoRA adapter on `base_dir` with non-zero weights (lora_B drawn with std `spread`
    from `seed`, so its delta shows), and its manifest."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    # Seeded before peft draws lora_A, so that an adapter never depends on what ran before it.
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, spread)
    peft_model.save_pretrained(out_dir)
    manifest = {
        "format": 1,
        "emotion": emotion,
        "method": "lora",
        "base": {"spec": str(base_dir), "id": str(base_dir), "revision": None},
        "parent": None,
        "metrics": {"best_val_loss": 5.0, "best_val_ppl": 148.4},
        "steps": 10,
    }
    (out_dir / "poetstudio.json").write_text(json.dumps(manifest, indent=2))
    return out_dir


def build_tiny_lora(base_dir: Path, out_dir: Path, emotion: str, seed: int = 1) -> Path:
    """Write a LoRA adapter for the tiny base, with non-zero weights, and its manifest."""
    from peft import LoraConfig

    config = LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True)
    return write_lora(base_dir, out_dir, emotion, config, seed, spread=0.5)


def build_tiny_full_model(folder: Path, emotion: str, seed: int = 3) -> Path:
    """A full fine-tuned model folder: a tiny GPT-2 with its tokenizer, and a manifest."""
    build_tiny_base(folder, seed=seed)
    manifest = {"format": 1, "emotion": emotion, "method": "full", "base": {"spec": "tiny"}}
    (folder / "poetstudio.json").write_text(json.dumps(manifest))
    return folder


def build_guided_adapters(base_dir: Path, models_dir: Path) -> None:
    """Neutral, joy and sadness LoRA adapters on the tiny base: enough to guide and to blend."""
    for emotion, seed in GUIDED_ADAPTERS:
        build_tiny_lora(base_dir, models_dir / emotion, emotion, seed=seed)


def pinned_poet(home: DataHome, bundled_dir: Path, precision: str = "auto") -> Poet:
    """A CPU Poet that always decodes on one thread.

    The thread count otherwise follows how busy the cores are, and a matmul split over another
    number of threads may sum in another order: two runs that must agree bit for bit pin it.
    """
    from studio.core.generation.poet import Poet

    poet = Poet(home, device="cpu", bundled_dir=bundled_dir, precision=precision)
    poet.decode_threads = 1
    return poet


def cancelled_at_third_token(
    poet: Poet, emotion: str, first_line: str, params: SamplingParams
) -> tuple[GenerationStats | None, int]:
    """Stream a poem and cancel it once its third token has streamed: the stats it ended with,
    and the tokens it had written when cancel was set (a stream that stops within one token
    reports exactly those)."""
    import threading

    cancel = threading.Event()
    stream = poet.stream_poem(emotion, first_line, params, cancel=cancel)
    next(stream)  # the first line
    tokens_at_cancel = -1
    for generated, _ in enumerate(stream, start=1):
        if generated == 3:
            stats = poet.last_stats
            assert stats is not None
            tokens_at_cancel = stats.tokens
            cancel.set()
    return poet.last_stats, tokens_at_cancel


class ScriptedLM:
    """A stand-in language model that makes greedy decoding follow a script of token ids (one
    per call, the last repeated), with `runner_up` ranked second at every step."""

    def __init__(self, script: list[int], runner_up: int, vocab: int) -> None:
        self.script = script
        self.runner_up = runner_up
        self.vocab = vocab
        self.calls = 0

    def __call__(self, input_ids: Any, cache: Any, use_cache: bool, logits_to_keep: int) -> Any:
        import torch

        logits = torch.zeros(1, 1, self.vocab)
        logits[0, 0, self.runner_up] = 50.0
        logits[0, 0, self.script[min(self.calls, len(self.script) - 1)]] = 100.0
        self.calls += 1
        return SimpleNamespace(logits=logits, cache=cache)
