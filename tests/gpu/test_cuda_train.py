"""The training path on a CUDA GPU: bf16 training, MFU, exact resume, compiled and plain
checkpoints read both ways, a background job, and generation from the finished adapter.

Skipped without CUDA; `make test-gpu` runs it. Throughput on a real base is measured by
benchmarks/bench_train.py (`--device cuda`), not here.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from tests.helpers.training import config_args, events_of, new_job, tiny_config, write_dataset
from trainer.common.home import DataHome
from trainer.training.loop import train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

BIG = {"batch_size": 64, "block_size": 64, "lr": 3e-3, "max_steps": 40, "eval_every": 20}
SAME = {"max_steps": 8, "eval_every": 3, "lora_dropout": 0.1}


@pytest.fixture
def data_home(home: DataHome) -> DataHome:
    write_dataset(home, counts={"neutral": 400, "trust": 1200})
    return home


def split_run(home: DataHome, base: Path, name: str, first: str, then: str) -> list[float]:
    """Step losses of a run stopped with compile `first` and resumed with `then`.

    On CUDA step events arrive when the losses are read (at each eval here), so the stop asked
    for at step 4 lands at the next read, step 6.
    """
    job = new_job(home, name)
    stop = threading.Event()
    config = tiny_config(base, device="cuda", compile=first, **SAME)
    train(config, home, job, stop=stop, on_event=lambda r: r.get("step") == 4 and stop.set())
    train(tiny_config(base, device="cuda", compile=then, **SAME), home, job, resume=True)
    return [e["loss"] for e in events_of(job, "step")]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_large_batch_trains_in_bf16_on_cuda_and_reports_mfu(
    data_home: DataHome, tiny_base: Path, method: str
) -> None:
    job = new_job(data_home, method)
    train(tiny_config(tiny_base, device="cuda", method=method, **BIG), data_home, job)
    start = events_of(job, "start")[0]
    assert start["device"].startswith("cuda") and start["dtype"] == "bfloat16"
    assert start["compile"] == "on" and start["attention"] == "sdpa"
    steps = events_of(job, "step")
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert all(s["tokens_per_s"] > 0 for s in steps)
    if start["peak_flops"] is not None:
        assert all(0 < s["mfu"] < 1 for s in steps[1:])
    manifest = json.loads((data_home.models / "trust" / "poetstudio.json").read_text())
    assert manifest["hyperparameters"]["compile"] == "on"


def test_a_resumed_cuda_run_continues_where_it_stopped(
    data_home: DataHome, tiny_base: Path
) -> None:
    straight = new_job(data_home, "straight")
    train(tiny_config(tiny_base, device="cuda", **SAME), data_home, straight)
    expected = [e["loss"] for e in events_of(straight, "step")]
    got = split_run(data_home, tiny_base, "split", "auto", "auto")
    assert got == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize(("first", "then"), [("on", "off"), ("off", "on")])
def test_compiled_and_plain_runs_resume_from_each_others_checkpoints(
    data_home: DataHome, tiny_base: Path, first: str, then: str
) -> None:
    straight = new_job(data_home, "straight")
    train(tiny_config(tiny_base, device="cuda", compile="off", **SAME), data_home, straight)
    expected = [e["loss"] for e in events_of(straight, "step")]
    got = split_run(data_home, tiny_base, f"{first}-{then}", first, then)
    # Compiled kernels round differently, so the curves agree to bf16 precision, not bit for bit.
    assert got == pytest.approx(expected, abs=2e-2)


def test_a_background_job_trains_on_cuda_and_its_adapter_generates(
    data_home: DataHome, tiny_base: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.common.textformat import PoemTokens, prompt_ids
    from trainer.jobs.control import start_job
    from trainer.jobs.watch import follow

    config = tiny_config(tiny_base, device="cuda", max_steps=6)
    job_id = start_job(data_home, config_args(config))
    final = follow(data_home, job_id, lambda _progress: None, poll_s=0.2)
    assert (final.status, final.step) == ("done", 6) and final.device.startswith("cuda")

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.bfloat16).to("cuda")
    model = PeftModel.from_pretrained(model, str(data_home.models / "trust")).eval()
    line = "The lamps are out along the quay"
    ids = torch.tensor([prompt_ids(tokenizer, line, PoemTokens.of(tokenizer))], device="cuda")
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        do_sample=True,
        max_new_tokens=20,
        pad_token_id=tokenizer.eos_token_id,
    )
    assert out.shape[1] > ids.shape[1]
