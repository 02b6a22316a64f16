"""A GPU check of the training pipeline: train on cuda in bf16, resume, run a job, reload, generate.

Run it on a machine with a CUDA GPU from the repository root:

    PYTHONUNBUFFERED=1 python benchmarks/check_cuda_train.py [--smollm2-config DIR --poems DIR]

1. LoRA and full fine-tunes of a tiny GPT-2 on cuda (bf16 autocast), with a large batch;
2. 4 + resume 4 steps against 8 straight steps on cuda;
3. the same through a background job process (start_job + follow);
4. the finished adapter reloaded on cuda, generating from a seed line;
5. with `--smollm2-config` (a folder with SmolLM2's config.json and tokenizer) and `--poems`
   (a dataset folder), LoRA throughput of a randomly initialised SmolLM2-sized model on real poems.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from trainer.common.home import DataHome

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def events(job: Path, kind: str) -> list[dict]:
    lines = (job / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def main() -> None:
    import torch

    from tests.helpers.models import build_tiny_base
    from tests.helpers.training import config_args, tiny_config, write_dataset
    from trainer.jobs.control import follow, start_job
    from trainer.training.loop import train

    parser = argparse.ArgumentParser()
    parser.add_argument("--smollm2-config", type=Path)
    parser.add_argument("--poems", type=Path)
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--device", default="cuda", help="cpu only to try this script out")
    parser.add_argument("--only-smollm2", action="store_true", help="skip the tiny-model checks")
    args = parser.parse_args()
    device = args.device
    cuda = device == "cuda"
    report: dict[str, object] = {
        "gpu": torch.cuda.get_device_name(0) if cuda else "none",
        "torch": torch.__version__,
        "bf16": torch.cuda.is_bf16_supported() if cuda else None,
    }
    home = DataHome(Path(tempfile.mkdtemp())).ensure()
    base = build_tiny_base(home.root / "tiny-base")
    write_dataset(home, counts={"neutral": 400, "trust": 1200})

    def run(name: str, **overrides: object) -> dict:
        job = home.jobs / name
        job.mkdir()
        start = time.perf_counter()
        train(tiny_config(base, device=device, **overrides), home, job)
        steps = events(job, "step")
        head = events(job, "start")[0]
        return {
            "device": head["device"],
            "dtype": head["dtype"],
            "first_loss": steps[0]["loss"],
            "last_loss": steps[-1]["loss"],
            "best_val_ppl": events(job, "done")[0]["best_val_ppl"],
            "median_tokens_per_s": sorted(s["tokens_per_s"] for s in steps)[len(steps) // 2],
            "wall_s": round(time.perf_counter() - start, 1),
        }

    if not args.only_smollm2:
        big = {"batch_size": 64, "block_size": 64, "lr": 3e-3, "max_steps": 40, "eval_every": 20}
        report["lora"] = run("lora", **big)
        report["full"] = run("full", method="full", **big)
        print(json.dumps(report, indent=1), flush=True)

        same = {"max_steps": 8, "eval_every": 3, "lora_dropout": 0.1}
        run("straight", **same)
        import threading

        stop = threading.Event()
        split = home.jobs / "split"
        split.mkdir()
        config = tiny_config(base, device=device, **same)
        train(config, home, split, stop=stop, on_event=lambda r: r.get("step") == 4 and stop.set())
        train(config, home, split, resume=True)
        a = [e["loss"] for e in events(home.jobs / "straight", "step")]
        b = [e["loss"] for e in events(split, "step")]
        report["resume_max_abs_diff"] = max(abs(x - y) for x, y in zip(a, b, strict=True))

        job_id = start_job(home, config_args(tiny_config(base, device=device, max_steps=6)))
        final = follow(home, job_id, lambda _p: None, poll_s=0.2)
        report["job"] = {"status": final.status, "device": final.device, "step": final.step}

        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from trainer.common.textformat import prompt_ids

        tokenizer = AutoTokenizer.from_pretrained(base)
        dtype = torch.bfloat16 if cuda else torch.float32
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype).to(device)
        model = PeftModel.from_pretrained(model, str(home.models / "trust")).eval()
        ids = torch.tensor(
            [prompt_ids(tokenizer, "The lamps are out along the quay")], device=device
        )
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=True,
            top_k=50,
            top_p=0.95,
            max_new_tokens=40,
            pad_token_id=tokenizer.eos_token_id,
        )
        report["generated"] = tokenizer.decode(out[0], skip_special_tokens=True)
    print(json.dumps(report, indent=1), flush=True)
    if args.smollm2_config and args.poems:
        report["smollm2_sized"] = smollm2_throughput(home, args.smollm2_config, args.poems, device)
    shutil.rmtree(home.root, ignore_errors=True)
    print(json.dumps(report, indent=1), flush=True)
    args.out.write_text(json.dumps(report, indent=1))


def smollm2_throughput(home: DataHome, config_dir: Path, poems: Path, device: str) -> dict:
    """LoRA tokens/s of a random SmolLM2-135M-shaped model on real poems, at several batch sizes."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from trainer.training.config import TrainConfig
    from trainer.training.loop import train

    folder = home.root / "smollm2-random"
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(config_dir))
    pad = model.config.pad_token_id
    if pad is not None:
        # Random init zeroes the padding row, and SmolLM2's pad is its eos, which every poem
        # ends with; trained weights have no zero row, so give this one random values too.
        with torch.no_grad():
            model.get_input_embeddings().weight[pad].normal_(0, 0.02)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(config_dir).save_pretrained(folder)
    shutil.copytree(poems, home.datasets / "real")
    found = {}
    for batch in (8, 64):
        job = home.jobs / f"smol-{batch}"
        job.mkdir()
        config = TrainConfig(
            emotion="trust", base=str(folder), dataset="real", device=device, max_steps=30,
            batch_size=batch, block_size=128, eval_every=1000, checkpoint_every=1000,
            from_base=True,
        )  # fmt: skip
        try:
            train(config, home, job)
        except Exception as exc:  # noqa: BLE001 - report what the events say, then go on
            found[f"batch_{batch}_error"] = str(exc)
            found[f"batch_{batch}_losses"] = [e["loss"] for e in events(job, "step")][:8]
            found[f"batch_{batch}_evals"] = [e["val_loss"] for e in events(job, "eval")]
        steps = events(job, "step")[5:]
        rates = sorted(s["tokens_per_s"] for s in steps)
        found[f"batch_{batch}x128_tokens_per_s"] = rates[len(rates) // 2]
        print(batch, found, flush=True)
    return found


if __name__ == "__main__":
    main()
