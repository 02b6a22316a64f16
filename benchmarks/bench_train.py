"""Training throughput and memory: poetstudio's packed loop against an AutoCompose-style loop.

All variants train the same LoRA adapters (r=16 on all linear layers, no dropout) on the same base,
poems and machine:
- packed: poetstudio's loop as `train` runs it: packed blocks of `--block` tokens with poems end to
  end (trainer.training.loop.Batches), in its default precision (bf16 autocast where the CPU or GPU
  has native bf16, trainer/common/precision.py);
- packed-fp32: the same packed feed in plain fp32, to show what packing alone gives;
- padded: AutoCompose-style: every poem padded (or cut) to 100 tokens with an attention mask, pads
  counted in the loss, plain fp32.

- packed@N for each N of `--blocks`: the packed bf16 feed in blocks of N tokens, with the batch
  scaled so that every step trains the same number of tokens (poems are about 75 tokens long, so
  packing makes a longer block cost only its attention).

Throughput: one process, one model, the variants' steps interleaved (packed, packed-fp32, padded,
then the next round), so that load from other processes on a shared machine hits all alike;
medians per variant. Memory: each variant again in a fresh process of its own, for its peak RSS
(`--no-memory` skips it). It prints content tokens/s (tokens that are not padding) and their
ratios, raw tokens/s against the machine's measured fp32 matmul rate (4 x params FLOPs per token
for LoRA), and peak RSS.

`--loop-against DIR` also times the whole training loop (`train`, with its events, evaluation
and saving) of this tree and of the tree in DIR, alternately, each run in a fresh process on a
scratch data home: the median step tokens/s of each. Give DIR a worktree of an earlier commit
(`git worktree add /tmp/before HEAD`) to see whether a change made the loop slower.

    POETSTUDIO_HOME=.devdata .venv/bin/python benchmarks/bench_train.py --rounds 6
    POETSTUDIO_HOME=.devdata .venv/bin/python benchmarks/bench_train.py --rounds 4 --no-memory \
        --blocks 128,256,512 --loop-against /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
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
    from trainer.common.textformat import PoemTokens, eos_id
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
    sequences = tokenize_poems(tokenizer, texts, PoemTokens.of(tokenizer))
    pad = eos_id(tokenizer)

    def packed_feed(block: int, batch: int) -> list[tuple]:
        feed = Batches(pack(sequences, block, pad), batch, seed=0, device=device)
        return [(b.input_ids, b.labels, None) for b in map(feed.get, range(args.rounds + 1))]

    packed = packed_feed(args.block, args.batch)
    feeds = {
        "packed": (packed, training_dtype(device)),
        "packed-fp32": (packed, None),
        "padded": (padded_batches(sequences, args.batch, pad)[: args.rounds + 1], None),
    }
    for block in block_sizes(args):
        batch = max(1, args.batch * args.block // block)
        feeds[f"packed@{block}"] = (packed_feed(block, batch), training_dtype(device))
    return model, optimizer, device, feeds


def block_sizes(args: argparse.Namespace) -> list[int]:
    """The block sizes `--blocks` asks to compare."""
    return [int(size) for size in args.blocks.split(",") if size.strip()] if args.blocks else []


def variants(args: argparse.Namespace) -> tuple[str, ...]:
    """Every variant this run measures: all, or those `--variants` names."""
    found = VARIANTS + tuple(f"packed@{block}" for block in block_sizes(args))
    chosen = [name.strip() for name in args.variants.split(",") if name.strip()]
    return tuple(name for name in found if name in chosen) if chosen else found


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
    rates: dict[str, list[tuple[float, float]]] = {variant: [] for variant in variants(args)}
    for round_ in range(args.rounds + 1):
        order = variants(args) if round_ % 2 else tuple(reversed(variants(args)))
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


# Runs `train` in the tree given as argv[1] on a scratch home linked to argv[2]'s bases and
# datasets, and prints each step's tokens/s: only names every version of the loop has.
LOOP_RUN = """
import json, os, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from trainer.common.home import DataHome
from trainer.training.config import TrainConfig
from trainer.training.loop import train
real = Path(sys.argv[2])
home = DataHome(Path(tempfile.mkdtemp(prefix="bench-loop-"))).ensure()
for name in ("bases", "datasets"):
    (home.root / name).rmdir()
    (home.root / name).symlink_to(real / name)
settings = json.loads(sys.argv[3])
config = TrainConfig(**settings)
job = home.jobs / "bench"
job.mkdir(parents=True)
train(config, home, job)
steps = [json.loads(line) for line in (job / "events.jsonl").read_text().splitlines()]
print(json.dumps([e["tokens_per_s"] for e in steps if e["event"] == "step"]))
"""


def loop_rates(tree: Path, home: Path, args: argparse.Namespace) -> list[float]:
    """Step tokens/s of one `train` run of the loop in `tree`, its first step left out."""
    settings = {
        "emotion": args.emotion,
        "base": args.base,
        "dataset": args.dataset,
        "device": args.device,
        "max_steps": args.loop_steps,
        "batch_size": args.batch,
        "block_size": args.block,
        "eval_every": 10**6,
        "eval_blocks": 2,
        "checkpoint_every": 10**6,
    }
    command = [sys.executable, "-c", LOOP_RUN, str(tree), str(home), json.dumps(settings)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=tree, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])[1:]


def compare_loops(args: argparse.Namespace) -> None:
    """This tree's loop against the one in `--loop-against`, run alternately; median tokens/s."""
    from trainer.common.home import resolve_home

    home = resolve_home(args.home).root
    trees = {"this tree": ROOT, "against": Path(args.loop_against).resolve()}
    rates: dict[str, list[float]] = {name: [] for name in trees}
    for round_ in range(args.loop_runs):
        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
        for name in order:
            rates[name] += loop_rates(trees[name], home, args)
    medians = {name: statistics.median(found) for name, found in rates.items()}
    for name, found in rates.items():
        print(
            f"loop {name:9} median step tok/s {medians[name]:7.1f} over {len(found)} steps "
            f"({medians[name] / medians['against']:.2f}x {trees['against']})"
        )


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
    parser.add_argument("--blocks", default="", help="block sizes to compare, e.g. 128,256,512")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS processes")
    parser.add_argument("--variants", default="", help="only these, e.g. packed,packed@512")
    parser.add_argument("--loop-against", help="a tree (a git worktree) whose loop to compare")
    parser.add_argument("--loop-steps", type=int, default=8, help="steps per timed loop run")
    parser.add_argument("--loop-runs", type=int, default=2, help="timed loop runs per tree")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps({"peak_rss_gb": memory(args)}))
        return
    peaks: dict[str, float] = {}
    for variant in () if args.no_memory else variants(args):
        command = [sys.executable, __file__, *sys.argv[1:], "--variant", variant]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        peaks[variant] = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_gb"]
    results = throughput(args)
    gflops = matmul_gflops()
    reference = "padded" if "padded" in results else variants(args)[0]
    padded = results[reference]["content_tokens_per_s"]
    for variant in variants(args):
        found = results[variant]
        ours = found["content_tokens_per_s"]
        achieved = found["raw_tokens_per_s"] * 4 * found["params"] / 1e9
        peak = f"  peak RSS {peaks[variant]:.2f} GB" if variant in peaks else ""
        print(
            f"{variant:12} content tok/s {ours:7.1f} ({ours / padded:.2f}x {reference})  "
            f"raw tok/s {found['raw_tokens_per_s']:7.1f} = {achieved:6.1f} GFLOP/s "
            f"({achieved / gflops:.0%} of fp32 {gflops:.0f}){peak}"
        )
    if args.loop_against:
        compare_loops(args)


if __name__ == "__main__":
    main()
