"""A tiny llama-architecture base built offline in seconds, with its gguf beside it, and LoRA
adapters on it: what the llama backend and the torch backend can both run.

The gguf is written here with the `gguf` package in fp32, laid out as llama.cpp expects a llama
gguf (q and k rows permuted per head, gguf_lora.permute_rows), so the two backends' logits agree
up to llama.cpp's float arithmetic.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.models import GUIDED_ADAPTERS, write_lora, write_tokenizer

HEADS, KV_HEADS, LAYERS, HIDDEN, FFN = 4, 2, 2, 64, 128
ROPE_THETA = 10000.0


def build_tiny_llama(folder: Path, seed: int = 0) -> Path:
    """Write a tiny random llama model, a byte-level BPE tokenizer and `model.gguf`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = write_tokenizer(folder)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=256,
        rope_theta=ROPE_THETA,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # a wider spread than the init's: distinct, peaked next-token scores
        for param in model.parameters():
            if param.dim() == 2:
                param.normal_(0, 0.15)
    model.save_pretrained(folder)
    write_llama_gguf(model, folder / "tokenizer.json", folder / "model.gguf")
    return folder


def write_llama_gguf(model: object, tokenizer_json: Path, out: Path) -> None:
    """`model` (a transformers llama) as an fp32 llama gguf with its byte-level BPE vocabulary."""
    import gguf
    import numpy as np

    from studio.core.generation.backends.gguf_lora import permute_rows

    config = model.config  # type: ignore[attr-defined]
    state = {k: v.float().numpy() for k, v in model.state_dict().items()}  # type: ignore[attr-defined]
    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    vocab = spec["model"]["vocab"]
    tokens = [""] * len(vocab)
    for text, index in vocab.items():
        tokens[index] = text
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    special = {entry["id"] for entry in spec.get("added_tokens", [])}

    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(ROPE_THETA)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    types = [
        gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL
        for i in range(len(tokens))
    ]
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(config.bos_token_id)
    writer.add_eos_token_id(config.eos_token_id)

    def put(name: str, array: np.ndarray) -> None:
        writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))

    put("token_embd.weight", state["model.embed_tokens.weight"])
    put("output_norm.weight", state["model.norm.weight"])
    for i in range(config.num_hidden_layers):
        layer = f"model.layers.{i}."
        put(f"blk.{i}.attn_norm.weight", state[layer + "input_layernorm.weight"])
        put(f"blk.{i}.ffn_norm.weight", state[layer + "post_attention_layernorm.weight"])
        q = state[layer + "self_attn.q_proj.weight"]
        k = state[layer + "self_attn.k_proj.weight"]
        put(f"blk.{i}.attn_q.weight", permute_rows(q, config.num_attention_heads))
        put(f"blk.{i}.attn_k.weight", permute_rows(k, config.num_key_value_heads))
        put(f"blk.{i}.attn_v.weight", state[layer + "self_attn.v_proj.weight"])
        put(f"blk.{i}.attn_output.weight", state[layer + "self_attn.o_proj.weight"])
        put(f"blk.{i}.ffn_gate.weight", state[layer + "mlp.gate_proj.weight"])
        put(f"blk.{i}.ffn_up.weight", state[layer + "mlp.up_proj.weight"])
        put(f"blk.{i}.ffn_down.weight", state[layer + "mlp.down_proj.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def build_llama_lora(base_dir: Path, out_dir: Path, emotion: str, seed: int = 1) -> Path:
    """A LoRA adapter on every projection of the tiny llama, non-zero, with its manifest."""
    from peft import LoraConfig

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=4, lora_alpha=8, target_modules=targets)
    return write_lora(base_dir, out_dir, emotion, config, seed, spread=0.3)


def build_llama_adapters(base_dir: Path, models_dir: Path) -> None:
    """Neutral, joy and sadness adapters on the tiny llama: enough to guide and to blend."""
    for emotion, seed in GUIDED_ADAPTERS:
        build_llama_lora(base_dir, models_dir / emotion, emotion, seed=seed)
