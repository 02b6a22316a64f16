"""Where a training step's time goes: torch.profiler over a few steps of the loop's own pieces.

The model, data and step are those `train` uses (trainer.training.start.load_model, packed
blocks through trainer.training.loop.Batches, autocast in the run's precision, AdamW with
clipping). After warm-up steps it profiles `--steps` steps, each split into the phases that
`record_function` names: data (a micro-batch onto the device), forward, backward and optimizer.
It prints each phase's share of the step and the operators with the most self time.

    POETSTUDIO_HOME=.devdata .venv/bin/python benchmarks/profile_train_step.py --steps 3
    POETSTUDIO_HOME=.devdata .venv/bin/python benchmarks/profile_train_step.py --device cuda \\
        --batch 64 --block 256 --method full
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PHASES = ("data", "forward", "backward", "optimizer")


def main() -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from trainer.common.device import pick_device
    from trainer.common.home import resolve_home
    from trainer.common.precision import training_dtype
    from trainer.training.checkpoint import trainable_weights
    from trainer.training.config import TrainConfig
    from trainer.training.loop import Batches
    from trainer.training.packing import DataSpec, load_training_data
    from trainer.training.start import StartPoint, load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="data home (default: $POETSTUDIO_HOME)")
    parser.add_argument("--base", default="smollm2-135m")
    parser.add_argument("--dataset", default="clean")
    parser.add_argument("--emotion", default="trust")
    parser.add_argument("--method", default="lora", choices=("lora", "full"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2, help="steps before profiling")
    parser.add_argument("--steps", type=int, default=3, help="profiled steps")
    parser.add_argument("--top", type=int, default=15, help="operators to list")
    args = parser.parse_args()

    torch.manual_seed(0)
    home = resolve_home(args.home)
    device = pick_device(args.device)
    dtype = training_dtype(device, args.precision)
    config = TrainConfig(emotion=args.emotion, base=args.base, method=args.method)
    start = StartPoint(args.base)
    tokenizer, model = load_model(config, start, home)
    spec = DataSpec(args.dataset, args.emotion, args.block, 100, 0, 1)
    data = load_training_data(home, tokenizer, spec, start.tokens(tokenizer))
    model.to(device).train()
    batches = Batches(data.train, args.batch, 0, device)
    params = list(trainable_weights(model).values())
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=device.startswith("cuda") or None)
    amp = device.split(":")[0]

    def step(micro: int) -> None:
        with record_function("data"):
            batch = batches.get(micro)
        with record_function("forward"), torch.autocast(amp, dtype=dtype, enabled=bool(dtype)):
            loss = model(input_ids=batch.input_ids, labels=batch.labels).loss
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    for micro in range(args.warmup):
        step(micro)
    activities = [ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for micro in range(args.warmup, args.warmup + args.steps):
            step(micro)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    events = prof.key_averages()
    totals = {e.key: e.cpu_time_total for e in events if e.key in PHASES}
    whole = sum(totals.values()) or 1.0
    tokens = args.batch * args.block
    per_step_ms = whole / args.steps / 1000
    print(
        f"{args.method} on {device} ({dtype or 'fp32'}), {args.batch} x {args.block} tokens: "
        f"{per_step_ms:.0f} ms a step, {tokens / per_step_ms * 1000:.0f} tokens/s"
    )
    for phase in PHASES:
        share = totals.get(phase, 0.0) / whole
        print(f"  {phase:9} {totals.get(phase, 0.0) / args.steps / 1000:8.1f} ms  {share:5.1%}")
    sort = "self_cuda_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    print(events.table(sort_by=sort, row_limit=args.top))


if __name__ == "__main__":
    main()
