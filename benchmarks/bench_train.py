"""Training throughput and memory: poetstudio's packed loop against an AutoCompose-style loop.

All variants train the same LoRA adapters (r=16 on all linear layers, no dropout) on the same base,
poems and machine:
- packed: poetstudio's loop as `train` runs it: packed blocks of `--block` tokens with poems end to
  end (trainer.training.loop.Batches), in its default precision (bf16 autocast where the CPU or GPU
  has native bf16, trainer/common/precision.py);
- packed-fp32: the same packed feed in plain fp32, to show what packing alone gives;
- padded: AutoCompose-style: every poem padded (or cut) to 100 tokens with an attention mask, pads
  counted in the loss, plain fp32.

Throughput: one process, one model, the variants' steps interleaved (packed, packed-fp32, padded,
then the next round), so that load from other processes on a shared machine hits all alike;
medians per variant. Memory: each variant again in a fresh process of its own, for its peak RSS.
It prints content tokens/s (tokens that are not padding) and their ratios, raw tokens/s against
the machine's measured fp32 matmul rate (4 x params FLOPs per token for LoRA), and peak RSS.

    POETSTUDIO_HOME=.devdata .venv/bin/python benchmarks/bench_train.py --rounds 6
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


def setup(args: argparse.Namespace) -> tuple:
    """Model, optimizer, device and every variant's batches."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.common.bases import resolve_base
    from trainer.common.device import pick_device
    from trainer.common.home import resolve_home
    from trainer.common.precision import training_dtype
    from trainer.common.textformat import eos_id
    from trainer.training.loop import Batches
    from trainer.training.packing import label_texts, pack, tokenize_poems

    torch.manual_seed(0)
    home = resolve_home(args.home)
    device = pick_device(args.device)
    path = resolve_base(args.base, home)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora).to(device)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    texts = label_texts(home, args.dataset, args.emotion, "train", 100)[:4000]
    sequences = tokenize_poems(tokenizer, texts)
    pad = eos_id(tokenizer)
    feed = Batches(pack(sequences, args.block, pad), args.batch, seed=0, device=device)
    packed = [(*feed.get(m), None) for m in range(args.rounds + 1)]
    feeds = {
        "packed": (packed, training_dtype(device)),
        "packed-fp32": (packed, None),
        "padded": (padded_batches(sequences, args.batch, pad)[: args.rounds + 1], None),
    }
    return model, optimizer, device, feeds


def train_step(model: object, optimizer: object, device: str, batch: tuple, dtype: object) -> tuple:
    """One optimizer step; returns (seconds, raw tokens, content tokens)."""
    import torch

    from trainer.training.packing import IGNORE

    ids, labels, mask = (t.to(device) if t is not None else None for t in batch)
    start = time.perf_counter()
    with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    float(loss)  # wait for the device
    content = int(mask.sum() if mask is not None else (labels != IGNORE).sum())
    return time.perf_counter() - start, ids.numel(), content


def throughput(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Interleaved steps of every variant in one process; median rates per variant."""
    model, optimizer, device, feeds = setup(args)
    params = sum(p.numel() for p in model.parameters())
    rates: dict[str, list[tuple[float, float]]] = {variant: [] for variant in VARIANTS}
    for round_ in range(args.rounds + 1):
        order = VARIANTS if round_ % 2 else tuple(reversed(VARIANTS))
        for variant in order:
            batches, dtype = feeds[variant]
            seconds, raw, content = train_step(model, optimizer, device, batches[round_], dtype)
            if round_:  # round 0 warms every path up
                rates[variant].append((raw / seconds, content / seconds))
    return {
        variant: {
            "raw_tokens_per_s": statistics.median(r for r, _ in found),
            "content_tokens_per_s": statistics.median(c for _, c in found),
            "params": params,
        }
        for variant, found in rates.items()
    }


def memory(args: argparse.Namespace) -> float:
    """Peak RSS (GB) of a process that trains two steps of one variant."""
    model, optimizer, device, feeds = setup(args)
    batches, dtype = feeds[args.variant]
    for batch in batches[:2]:
        train_step(model, optimizer, device, batch, dtype)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="data home (default: $POETSTUDIO_HOME)")
    parser.add_argument("--base", default="smollm2-135m")
    parser.add_argument("--dataset", default="clean")
    parser.add_argument("--emotion", default="trust")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=6, help="timed steps per variant")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps({"peak_rss_gb": memory(args)}))
        return
    peaks = {}
    for variant in VARIANTS:
        command = [sys.executable, __file__, *sys.argv[1:], "--variant", variant]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        peaks[variant] = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_gb"]
    results = throughput(args)
    gflops = matmul_gflops()
    padded = results["padded"]["content_tokens_per_s"]
    for variant in VARIANTS:
        found = results[variant]
        ours = found["content_tokens_per_s"]
        achieved = found["raw_tokens_per_s"] * 4 * found["params"] / 1e9
        print(
            f"{variant:12} content tok/s {ours:7.1f} ({ours / padded:.2f}x padded)  "
            f"raw tok/s {found['raw_tokens_per_s']:7.1f} = {achieved:6.1f} GFLOP/s "
            f"({achieved / gflops:.0%} of fp32 {gflops:.0f})  peak RSS {peaks[variant]:.2f} GB"
        )


if __name__ == "__main__":
    main()
