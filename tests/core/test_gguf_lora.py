"""A peft LoRA adapter as a GGUF LoRA: the delta it carries and its cache in the data home."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from studio.core.generation.backends.gguf_lora import (
    BaseShape,
    converted_adapter,
    lora_tensors,
    permute_rows,
    recorded_source,
)
from tests.helpers.tiny_llama import HEADS, KV_HEADS, build_llama_lora, build_tiny_llama
from trainer.common.errors import PoetstudioError

SHAPE = BaseShape(arch="llama", heads=HEADS, kv_heads=KV_HEADS)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny llama base and a LoRA adapter on every projection."""
    root = tmp_path_factory.mktemp("gguf-lora")
    base = build_tiny_llama(root / "base")
    return base, build_llama_lora(base, root / "joy", "joy")


def test_each_tensor_pair_carries_pefts_delta_in_llama_cpps_row_order(
    adapter: tuple[Path, Path],
) -> None:
    import numpy as np
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base, joy = adapter
    tensors = lora_tensors(joy, SHAPE)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(joy))
    checked = 0
    for name, module in model.named_modules():
        if not hasattr(module, "get_delta_weight") or "default" not in getattr(
            module, "lora_A", {}
        ):
            continue
        block = name.split("layers.")[1].split(".")[0]
        short = {
            "q_proj": "attn_q",
            "k_proj": "attn_k",
            "v_proj": "attn_v",
            "o_proj": "attn_output",
        }
        short |= {"gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
        leaf = short[name.rsplit(".", 1)[1]]
        delta = module.get_delta_weight("default").detach().numpy()
        if leaf == "attn_q":
            delta = permute_rows(delta, HEADS)
        elif leaf == "attn_k":
            delta = permute_rows(delta, KV_HEADS)
        key = f"blk.{block}.{leaf}.weight"
        product = tensors[key + ".lora_b"] @ tensors[key + ".lora_a"]
        np.testing.assert_allclose(product, delta, rtol=1e-5, atol=1e-6)
        checked += 1
    assert checked == 2 * 7 and len(tensors) == 2 * checked


def test_the_q_and_k_permutation_interleaves_each_heads_halves() -> None:
    import numpy as np

    rows = np.arange(8, dtype=np.float32)[:, None]  # 2 heads of 4 rows: halves (0 1)(2 3)
    assert permute_rows(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_a_conversion_is_cached_and_redone_when_the_adapter_changes(
    adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    _, joy = adapter
    mine = shutil.copytree(joy, tmp_path / "joy")
    cache = tmp_path / "cache"
    first = converted_adapter(mine, SHAPE, cache, "joy")
    stamp = first.stat().st_mtime_ns
    assert converted_adapter(mine, SHAPE, cache, "joy") == first
    assert first.stat().st_mtime_ns == stamp  # reused, not written again
    retrained = build_llama_lora(adapter[0], tmp_path / "retrained", "joy", seed=9)
    shutil.copy(retrained / "adapter_model.safetensors", mine / "adapter_model.safetensors")
    second = converted_adapter(mine, SHAPE, cache, "joy")
    assert second != first and recorded_source(second) is not None


def test_a_damaged_cache_file_is_converted_again(
    adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    _, joy = adapter
    path = converted_adapter(joy, SHAPE, tmp_path, "joy")
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 3])
    assert recorded_source(path) is None
    assert converted_adapter(joy, SHAPE, tmp_path, "joy") == path
    assert path.read_bytes() == whole


def test_concurrent_conversions_of_one_adapter_leave_one_whole_file(
    adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    _, joy = adapter
    results: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(converted_adapter(joy, SHAPE, tmp_path, "j"))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and recorded_source(results[0]) is not None
    assert [p.name for p in tmp_path.iterdir()] == [results[0].name]  # no temp files left


def test_an_adapter_llama_cpp_cannot_take_is_a_one_line_error(
    adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    import json
    import shutil

    _, joy = adapter
    dora = shutil.copytree(joy, tmp_path / "dora")
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(PoetstudioError, match="plain LoRA adapters only"):
        lora_tensors(dora, SHAPE)
    with pytest.raises(PoetstudioError, match="gpt2"):
        lora_tensors(joy, BaseShape(arch="gpt2", heads=2, kv_heads=2))
