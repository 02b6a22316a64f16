"""Writing a poem while a real training job runs in the background: both finish."""

import time
from pathlib import Path

import pytest

from studio.core.generation.poet import Poet
from studio.core.generation.settings import SamplingParams
from studio.core.generation.stats import STOP_MAX_TOKENS
from tests.helpers.models import build_tiny_lora
from tests.helpers.training import config_args, tiny_config, write_dataset
from trainer.common.home import DataHome
from trainer.jobs.control import job_dir, start_job
from trainer.jobs.watch import follow
from trainer.training.events import read_progress


@pytest.mark.subprocess
def test_generating_while_a_job_trains(home: DataHome, tiny_base: Path, tmp_path: Path) -> None:
    write_dataset(home, counts={"neutral": 80, "trust": 80})
    build_tiny_lora(tiny_base, home.models / "joy", "joy")
    job_id = start_job(home, config_args(tiny_config(tiny_base, max_steps=40, eval_every=20)))
    events = job_dir(home, job_id) / "events.jsonl"
    deadline = time.monotonic() + 90
    while read_progress(events).status == "pending":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    poet = Poet(home, device="cpu", bundled_dir=tmp_path / "no-bundled")
    endless = {"min_lines": 10_000, "max_lines": 10_000, "max_stanzas": 10_000}
    poems = []
    overlapped = 0
    for seed in range(3):
        params = SamplingParams(seed=seed, max_new_tokens=30, **endless)
        poems.append("".join(poet.stream_poem("joy", "The lamps are out", params)))
        assert poet.last_stats is not None and poet.last_stats.stop_reason == STOP_MAX_TOKENS
        overlapped += read_progress(events).status == "running"
    assert overlapped >= 1, "every poem finished outside the training run"
    final = follow(home, job_id, lambda progress: None, poll_s=0.05)
    assert final.status == "done" and final.step == 40
    assert all(p.startswith("The lamps are out\n") and len(p) > 20 for p in poems)
    assert (home.models / "trust" / "poetstudio.json").is_file()
