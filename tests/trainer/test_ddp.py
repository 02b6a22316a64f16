"""Training on several ranks: DDP under torchrun, on the CPU with gloo and a tiny GPT-2.

Each torchrun launch costs seconds of interpreter and torch start-up per rank, so the
subprocess tests launch four jobs in all and keep every run to a few dozen tiny steps.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.training import (
    config_args,
    job_events,
    kinds,
    tiny_config,
    two_rank_job_at_checkpoint,
    wait_for,
    write_dataset,
)
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.jobs.control import job_dir, list_jobs, start_job, stop_job
from trainer.jobs.launch import final_event, job_command
from trainer.jobs.locks import is_locked
from trainer.jobs.watch import follow
from trainer.training import distributed
from trainer.training.checkpoint import load_checkpoint
from trainer.training.config import TrainConfig
from trainer.training.distributed import Ranks, env_ranks, local_batch, share
from trainer.training.events import EVENTS_FILE, JobProgress
from trainer.training.loop import train

pytestmark = pytest.mark.numerics

ADAPTER = "adapter_model.safetensors"


@pytest.fixture
def data_home(home: DataHome) -> DataHome:
    write_dataset(home)
    return home


@pytest.fixture(scope="module")
def still_base(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny GPT-2 without dropout: one process and two ranks draw different masks."""
    folder = tmp_path_factory.mktemp("still-base")
    for item in tiny_base.iterdir():
        shutil.copy(item, folder / item.name)
    config = json.loads((folder / "config.json").read_text())
    config.update(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def log(home: DataHome, job_id: str) -> str:
    return (job_dir(home, job_id) / "log.txt").read_text()[-4000:]


def run_to_end(home: DataHome, args: list[str]) -> tuple[str, JobProgress]:
    job_id = start_job(home, args)
    return job_id, follow(home, job_id, lambda _: None, poll_s=0.05)


def adapter(home: DataHome) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(home.models / "trust" / ADAPTER))


def val_losses(home: DataHome, job_id: str) -> dict[int, float]:
    return {e["step"]: e["val_loss"] for e in job_events(home, job_id) if e["event"] == "eval"}


@pytest.mark.subprocess
def test_one_step_on_two_ranks_with_half_the_batch_each_equals_one_step_on_the_whole_batch(
    data_home: DataHome, still_base: Path
) -> None:
    # Two micro-batches of 4 blocks: each rank takes 2 blocks of each, and DDP exchanges the
    # gradients only after the second. fp32: under bf16 autocast (auto's choice on CPUs with
    # native bf16) half a batch rounds its activations differently from the whole.
    settings = {
        "max_steps": 1,
        "eval_every": 1,
        "grad_accum": 2,
        "warmup": 0.0,
        "precision": "fp32",
    }
    args = config_args(tiny_config(still_base, nproc=2, **settings))
    job_id, final = run_to_end(data_home, args)
    assert final.status == "done", log(data_home, job_id)
    two_ranks = adapter(data_home)
    two_loss = [e["loss"] for e in job_events(data_home, job_id) if e["event"] == "step"]
    manifest = json.loads((data_home.models / "trust" / "poetstudio.json").read_text())
    assert manifest["hyperparameters"]["world_size"] == 2
    assert manifest["hyperparameters"]["global_batch"] == 8

    one_dir = data_home.jobs / "single"
    one_dir.mkdir()
    seen: list[dict[str, Any]] = []
    train(tiny_config(still_base, **settings), data_home, one_dir, on_event=seen.append)
    one_rank = adapter(data_home)
    one_loss = [e["loss"] for e in seen if e["event"] == "step"]

    import torch

    assert two_loss == pytest.approx(one_loss, rel=1e-6)
    assert set(two_ranks) == set(one_rank)
    moved = 0
    for name, tensor in one_rank.items():
        torch.testing.assert_close(two_ranks[name], tensor, rtol=1e-5, atol=1e-6)
        moved += int(not torch.equal(tensor, torch.zeros_like(tensor)))
    assert moved  # the step changed weights, so the comparison says something


@pytest.mark.subprocess
def test_a_two_rank_run_stopped_and_resumed_ends_exactly_like_an_uninterrupted_one(
    data_home: DataHome, tiny_base: Path
) -> None:
    args = config_args(
        tiny_config(tiny_base, nproc=2, max_steps=60, eval_every=10, checkpoint_every=2, patience=0)
    )
    whole_id, whole = run_to_end(data_home, args)
    assert whole.status == "done", log(data_home, whole_id)
    expected = (data_home.models / "trust" / ADAPTER).read_bytes()
    expected_evals = val_losses(data_home, whole_id)

    job_id = start_job(data_home, args)
    wait_for(lambda: "checkpoint" in kinds(data_home, job_id), timeout_s=120.0)
    assert stop_job(data_home, job_id, wait_s=120)  # to the launching process, passed to both
    assert kinds(data_home, job_id)[-2:] == ["checkpoint", "stopped"], log(data_home, job_id)
    [info] = [info for info in list_jobs(data_home) if info.id == job_id]
    assert info.state == "stopped" and info.resumable and is_locked(data_home, "trust") is None
    _, state = load_checkpoint(info.path / "checkpoint")
    assert 2 <= state["step"] < 60

    resumed_id, resumed = run_to_end(data_home, ["--emotion", "trust", "--resume"])
    assert resumed_id == job_id and resumed.status == "done", log(data_home, job_id)
    assert (data_home.models / "trust" / ADAPTER).read_bytes() == expected
    assert val_losses(data_home, job_id) == expected_evals
    starts = [e for e in job_events(data_home, job_id) if e["event"] == "start"]
    assert starts[1]["resumed"] and starts[1]["step"] == state["step"]
    assert starts[1]["world_size"] == 2


@pytest.mark.subprocess
def test_a_killed_rank_ends_the_job_with_a_message_naming_it_and_the_checkpoint_loads(
    data_home: DataHome, tiny_base: Path
) -> None:
    job_id, _, ranks = two_rank_job_at_checkpoint(data_home, tiny_base)
    ranks[1].send_signal(signal.SIGKILL)
    final = follow(data_home, job_id, lambda _: None, poll_s=0.05)

    assert final.status == "error", log(data_home, job_id)
    assert final.message.startswith("rank 1 of 2 was killed by SIGKILL, so the job ended; ")
    # Rank 0's own view of it (a raw collective error from its lost peer) is not an event.
    assert kinds(data_home, job_id).count("error") == 1, job_events(data_home, job_id)[-3:]
    assert not any(rank.is_running() for rank in ranks.values())  # the job ended with its ranks
    assert "`poetstudio train --emotion trust --resume`" in final.message
    assert "\n" not in final.message
    _, state = load_checkpoint(job_dir(data_home, job_id) / "checkpoint")
    assert state["step"] >= 2 and f"(step {state['step']})" in final.message
    [info] = list_jobs(data_home)
    assert info.resumable and not info.alive
    wait_for(lambda: is_locked(data_home, "trust") is None, timeout_s=30.0)


def test_nproc_1_is_todays_path_one_process_and_no_process_group(
    data_home: DataHome, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.distributed as dist

    folder = data_home.jobs / "one"
    assert job_command(folder, 1) == [sys.executable, "-m", "trainer.jobs.run", str(folder)]
    assert job_command(folder, 2)[1:3] == ["-m", "trainer.jobs.launch"]
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert env_ranks() == Ranks()
    folder.mkdir()
    result = train(tiny_config(tiny_base, max_steps=2, eval_every=2), data_home, folder)
    assert result.status == "done" and not dist.is_initialized()
    start = json.loads((folder / EVENTS_FILE).read_text().splitlines()[0])
    assert start["world_size"] == 1


def test_ranks_share_every_micro_batch_and_an_empty_share_counts_nothing() -> None:
    import torch

    assert [share(5, Ranks(rank, 2, rank)) for rank in (0, 1)] == [slice(0, 3), slice(3, 5)]
    assert [share(2, Ranks(rank, 3, rank)) for rank in (0, 1, 2)] == [
        slice(0, 1),
        slice(1, 2),
        slice(2, 2),
    ]
    ids = torch.arange(6).view(2, 3)
    labels = ids.clone()
    got_ids, got_labels = local_batch(ids, labels, Ranks(2, 3, 2))
    assert got_ids.tolist() == [[0, 1, 2]] and got_labels.tolist() == [[-100] * 3]
    assert labels.tolist() == ids.tolist()  # the global batch is left as it was
    assert distributed.target_count(labels) == 4


def test_torchrun_environment_gives_the_rank_and_bad_values_are_one_line_errors() -> None:
    assert env_ranks({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Ranks(3, 4, 1)
    assert env_ranks({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}).is_main is False
    with pytest.raises(PoetstudioError, match="WORLD_SIZE='x' is not a whole number"):
        env_ranks({"RANK": "0", "WORLD_SIZE": "x"})
    with pytest.raises(PoetstudioError, match="rank 4 does not fit a world of 4"):
        env_ranks({"RANK": "4", "WORLD_SIZE": "4"})


def test_nproc_must_leave_every_rank_a_block_of_the_batch(tiny_base: Path) -> None:
    with pytest.raises(PoetstudioError, match="--batch-size 2 is shared by --nproc 4 ranks"):
        TrainConfig(emotion="trust", batch_size=2, nproc=4).validate()
    with pytest.raises(PoetstudioError, match="--nproc must be at least 1"):
        TrainConfig(emotion="trust", nproc=0).validate()


def test_the_rank_killed_first_is_named_not_the_ranks_that_failed_after_it(tmp_path: Path) -> None:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    def failed(**codes: int) -> ChildFailedError:
        return ChildFailedError(
            "trainer.jobs.run",
            {
                int(r[1:]): ProcessFailure(int(r[1:]), 100, code, "<N/A>")
                for r, code in codes.items()
            },
        )

    config = TrainConfig(emotion="trust", nproc=2)
    # Rank 0 lost its peer and failed first, or the launcher ended it with SIGTERM afterwards.
    for codes in ({"r0": 1, "r1": -9}, {"r1": -9, "r0": -15}):
        kind, text = final_event(failed(**codes), config, tmp_path, set(), stopping=False)
        assert kind == "error" and text.startswith("rank 1 of 2 was killed by SIGKILL")
        assert "no checkpoint had been written yet" in text
    # Rank 0 failed first and said why itself: its event stays the job's last word.
    assert final_event(failed(r0=1, r1=-15), config, tmp_path, {"error"}, stopping=False) is None
    kind, text = final_event(failed(r1=1, r0=-15), config, tmp_path, {"step"}, stopping=False)
    assert text.startswith("rank 1 of 2 failed with exit code 1, so the job ended")
    stopped = final_event(failed(r0=-15, r1=-15), config, tmp_path, set(), stopping=True)
    assert stopped == ("stopped", "stop requested before training began")


def run_two_ranks(script: str, *args: str, timeout: float) -> list[str]:
    """Run `script` as ranks 0 and 1 of one gloo group on a free local port, as torchrun
    would; both must exit 0. Their outputs, by rank."""
    import socket
    import subprocess

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args],
            env={
                **os.environ,
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": "2",
                "OMP_NUM_THREADS": "1",
            },
            stdout=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    try:
        outputs = [process.communicate(timeout=timeout)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert [process.returncode for process in processes] == [0, 0], outputs
    return outputs


# Two ranks of a run, by hand: rank 1's device "holds" a smaller automatic batch than rank 0's.
TWO_RANKS = """
import json, sys
from pathlib import Path
import torch, torch.distributed as dist
from trainer.common.home import DataHome
from trainer.training import distributed, loop
from trainer.training.config import TrainConfig

ranks = distributed.env_ranks()
distributed.start(ranks, "cpu")
loop.auto_batch_size = lambda *args: 4 if ranks.rank == 0 else 2
config = TrainConfig.from_dict(json.loads(sys.argv[2]))
loop.train(config, DataHome(Path(sys.argv[1])), Path(sys.argv[3]), ranks=ranks)
state = torch.get_rng_state().to(torch.int64)
states = [torch.zeros_like(state) for _ in range(ranks.world)]
dist.all_gather(states, state)
if ranks.is_main:
    print(json.dumps({"same_random_state": torch.equal(states[0], states[1])}))
distributed.stop(together=True)
"""


@pytest.mark.subprocess
def test_ranks_take_the_smallest_automatic_batch_and_draw_their_own_dropout(
    data_home: DataHome, tiny_base: Path
) -> None:
    folder = data_home.jobs / "by-hand"
    folder.mkdir()
    config = tiny_config(tiny_base, batch_size=None, max_steps=2, eval_every=2)
    arguments = (str(data_home.root), json.dumps(config.to_dict()), str(folder))
    outputs = run_two_ranks(TWO_RANKS, *arguments, timeout=300)
    start = json.loads((folder / EVENTS_FILE).read_text().splitlines()[0])
    assert start["batch_size"] == 4  # the 2 blocks rank 1 holds, on each of the 2 ranks
    # The tiny GPT-2 has dropout: each rank drew its own masks from its own stream.
    assert json.loads(outputs[0].splitlines()[-1]) == {"same_random_state": False}


def test_each_rank_draws_from_its_own_stream_a_pure_function_of_the_step() -> None:
    seeds = {distributed.step_seed(7, rank, step) for rank in range(4) for step in range(100)}
    assert len(seeds) == 400 and all(0 <= seed < 2**63 for seed in seeds)
    assert distributed.step_seed(7, 1, 5) == distributed.step_seed(7, 1, 5)
    assert distributed.step_seed(7, 1, 5) != distributed.step_seed(8, 1, 5)


# Rank 1 is slow to close its connections; rank 0 must not leave before it has.
LEAVING = """
import sys, time
import torch.distributed as dist
from trainer.training import distributed

ranks = distributed.env_ranks()
distributed.start(ranks, "cpu")
if ranks.rank == 1:
    destroy = dist.destroy_process_group

    def slow_destroy():
        time.sleep(1.0)
        destroy()

    dist.destroy_process_group = slow_destroy
distributed.stop(together=True)
print(time.time())
"""


@pytest.mark.subprocess
def test_after_a_good_run_rank_0_leaves_only_once_every_rank_has_closed_its_connections() -> None:
    outputs = run_two_ranks(LEAVING, timeout=120)
    rank0_left, rank1_left = (float(output.split()[-1]) for output in outputs)
    assert rank0_left >= rank1_left - 0.05  # the two clocks are one; print order is not
