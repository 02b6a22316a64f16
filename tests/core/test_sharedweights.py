"""CPU weights memory-mapped from the data home's cache, shared by every studio process: the
model decodes exactly as one loaded the ordinary way, its weights live in the mapped file, a
changed model gets a fresh file, and a home that cannot hold the file still loads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from studio.core.loader import LoadedModel, ModelLoader, _column_major_weights
from studio.core.registry import read_model
from trainer.common.home import DataHome


def _tiny_llama(folder: Path, tiny_base: Path, seed: int) -> Path:
    """A full model with nn.Linear layers (stored column-major on CPU) and tied embeddings."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    manifest = {"format": 1, "emotion": "joy", "method": "full", "base": {"spec": "tiny"}}
    (folder / "poetstudio.json").write_text(json.dumps(manifest))
    return folder


def _logits(loaded: LoadedModel | torch.nn.Module) -> torch.Tensor:
    module = loaded.module if isinstance(loaded, LoadedModel) else loaded
    with torch.no_grad():
        return module(torch.tensor([[1, 5, 9, 2, 7]])).logits


def _mapped_files() -> dict[str, tuple[int, int]]:
    """Each file mapped into this process: the lowest and highest address of its mappings."""
    spans: dict[str, tuple[int, int]] = {}
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6:
            low, high = (int(part, 16) for part in fields[0].split("-"))
            old = spans.get(fields[5], (low, high))
            spans[fields[5]] = (min(old[0], low), max(old[1], high))
    return spans


def _cached(home: DataHome) -> list[Path]:
    return sorted((home.root / "cache" / "weights").glob("*.safetensors"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_weights_are_mapped_from_one_file_and_decode_as_an_ordinary_load(
    home: DataHome, tiny_base: Path
) -> None:
    from transformers import AutoModelForCausalLM

    folder = _tiny_llama(home.models / "joy", tiny_base, seed=0)
    info = read_model(folder, "user", "joy")
    first = ModelLoader(home, device="cpu", precision="fp32").load(info)
    second = ModelLoader(home, device="cpu", precision="fp32").load(info)  # another studio
    (cached,) = _cached(home)
    low, high = _mapped_files()[str(cached)]
    for loaded in (first, second):
        weights = [p for n, p in loaded.module.named_parameters() if n.endswith("weight")]
        assert weights and all(low <= w.data_ptr() < high for w in weights)
        embeddings = loaded.module.get_input_embeddings().weight
        assert loaded.module.get_output_embeddings().weight is embeddings  # still tied
    # The same values in the same layout: the same kernels, so the same logits bit for bit.
    reference = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    _column_major_weights(reference)
    assert torch.equal(_logits(first), _logits(reference))
    assert torch.equal(_logits(second), _logits(reference))


def test_a_retrained_model_gets_a_fresh_file_not_the_stale_one(
    home: DataHome, tiny_base: Path
) -> None:
    folder = _tiny_llama(home.models / "joy", tiny_base, seed=0)
    before = _logits(
        ModelLoader(home, device="cpu", precision="fp32").load(read_model(folder, "user", "joy"))
    )
    _tiny_llama(folder, tiny_base, seed=1)
    after = _logits(
        ModelLoader(home, device="cpu", precision="fp32").load(read_model(folder, "user", "joy"))
    )
    assert len(_cached(home)) == 2
    assert not torch.equal(before, after)


def test_a_home_that_cannot_hold_the_file_still_loads_its_own_copy(
    home: DataHome, tiny_base: Path
) -> None:
    folder = _tiny_llama(home.models / "joy", tiny_base, seed=0)
    (home.root / "cache").write_text("not a folder")
    loaded = ModelLoader(home, device="cpu", precision="fp32").load(
        read_model(folder, "user", "joy")
    )
    assert _logits(loaded).shape[-1] == loaded.module.config.vocab_size
    assert (home.root / "cache").read_text() == "not a folder"


def test_a_failed_cache_write_or_a_damaged_cache_file_still_loads(
    home: DataHome, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studio.core import sharedweights

    folder = _tiny_llama(home.models / "joy", tiny_base, seed=0)
    info = read_model(folder, "user", "joy")
    expected = _logits(ModelLoader(home, device="cpu", precision="fp32").load(info))
    (cached,) = _cached(home)
    cached.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    assert torch.equal(
        _logits(ModelLoader(home, device="cpu", precision="fp32").load(info)), expected
    )
    assert not cached.exists()  # dropped, to be written afresh by the next load

    def disk_full(*args: object) -> None:
        raise RuntimeError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(sharedweights, "write_mapped", disk_full)
    assert torch.equal(
        _logits(ModelLoader(home, device="cpu", precision="fp32").load(info)), expected
    )
