"""Training throughput and memory: poetstudio's packed loop against an AutoCompose-style loop.

All variants train the same LoRA adapters (r=16 on all linear layers, no dropout) on the same base,
poems and machine, one after the other in fresh processes (so each peak RSS is its own),
alternating over several rounds:
- packed: poetstudio's loop as `train` runs it: packed blocks of `--block` tokens with poems end to
  end (trainer.finetune.Batches), in its default precision (bf16 autocast where the CPU or GPU
  has native bf16, trainer/precision.py);
- packed-fp32: the same packed feed in plain fp32, to show what packing alone gives;
- padded: AutoCompose-style: every poem padded (or cut) to 100 tokens with an attention mask, pads
  counted in the loss, plain fp32.

It prints the medians of content tokens/s (tokens that are not padding) and their ratios, raw
tokens/s against the machine's measured fp32 matmul rate (4 x params FLOPs per token for LoRA),
and each variant's peak RSS.

    POETSTUDIO_HOME=.devdata .venv/bin/python benchmarks/bench_train.py --steps 4 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAD_TO = 100  # AutoCompose's fixed length
VARIANTS = ("packed", "packed-fp32", "padded")


def matmul_gflops(size: int = 1024, repeats: int = 20) -> float:
    """The machine's fp32 matmul rate, median of several timed runs."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            torch.matmul(a, b)
        rates.append(2 * size**3 * repeats / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def padded_batches(sequences: list[list[int]], batch: int, pad: int) -> list[tuple]:
    """AutoCompose's feed: poems padded or cut to 100 tokens; labels are the inputs, pads too."""
    import torch

    batches = []
    for start in range(0, len(sequences) - batch, batch):
        cut = [seq[:PAD_TO] for seq in sequences[start : start + batch]]
        ids = torch.tensor([seq + [pad] * (PAD_TO - len(seq)) for seq in cut])
        mask = torch.tensor([[1] * len(seq) + [0] * (PAD_TO - len(seq)) for seq in cut])
        batches.append((ids, ids.clone(), mask))
    return batches


def one_run(args: argparse.Namespace) -> dict[str, float]:
    """Train `args.steps` timed steps (after one warm-up step) of one variant in this process."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.bases import resolve_base
    from trainer.device import pick_device
    from trainer.finetune import Batches
    from trainer.home import resolve_home
    from trainer.packing import IGNORE, label_texts, pack, tokenize_poems
    from trainer.precision import training_dtype
    from trainer.textformat import eos_id

    torch.manual_seed(0)
    home = resolve_home(args.home)
    device = pick_device(args.device)
    path = resolve_base(args.base, home)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora).to(device)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    texts = label_texts(home, args.dataset, args.emotion, "train", 100)[:4000]
    sequences = tokenize_poems(tokenizer, texts)
    pad = eos_id(tokenizer)
    dtype = training_dtype(device) if args.variant == "packed" else None
    if args.variant.startswith("packed"):
        feed = Batches(pack(sequences, args.block, pad), args.batch, seed=0, device=device)
        batches = [(*feed.get(m), None) for m in range(args.steps + 1)]
    else:
        batches = padded_batches(sequences, args.batch, pad)
    content = raw = 0
    elapsed = 0.0
    for step in range(args.steps + 1):
        ids, labels, mask = (t.to(device) if t is not None else None for t in batches[step])
        start = time.perf_counter()
        with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss)  # wait for the device
        if step == 0:
            continue  # warm-up, not timed
        elapsed += time.perf_counter() - start
        raw += ids.numel()
        content += int(mask.sum() if mask is not None else (labels != IGNORE).sum())
    return {
        "content_tokens_per_s": content / elapsed,
        "raw_tokens_per_s": raw / elapsed,
        "params": params,
        "dtype": str(dtype),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="data home (default: $POETSTUDIO_HOME)")
    parser.add_argument("--base", default="smollm2-135m")
    parser.add_argument("--dataset", default="clean")
    parser.add_argument("--emotion", default="trust")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(one_run(args)))
        return
    results: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            command = [sys.executable, __file__, *sys.argv[1:], "--variant", variant]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            results[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(variant, results[variant][-1], flush=True)
    gflops = matmul_gflops()

    def median(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in results[variant])

    padded = median("padded", "content_tokens_per_s")
    params = results["packed"][0]["params"]
    for variant in ("packed", "packed-fp32"):
        ours = median(variant, "content_tokens_per_s")
        achieved = median(variant, "raw_tokens_per_s") * 4 * params / 1e9
        print(f"{variant}: content tok/s {ours:.1f} vs padded {padded:.1f} = {ours / padded:.2f}x")
        print(f"{variant}: {achieved:.1f} GFLOP/s = {achieved / gflops:.0%} of fp32 {gflops:.1f}")
    for variant in VARIANTS:
        print(f"{variant}: peak RSS {median(variant, 'peak_rss_gb'):.2f} GB")


if __name__ == "__main__":
    main()
