"""Starting a job on several ranks: PyTorch's torchrun launcher, watched by the job's own process.

A job with `--nproc 1` is one process, `python -m trainer.jobs.run <job folder>`, as always. With
`--nproc N` above 1 the job's process is `python -m trainer.jobs.launch <job folder>`: it holds the
emotion's lock, then runs torchrun's launcher (torch.distributed.run) in-process, as

    torchrun --standalone --nproc-per-node N --max-restarts 0 -m trainer.jobs.run <job folder>

so each rank is an ordinary job process that finds its place in RANK, WORLD_SIZE and LOCAL_RANK.
This process outlives every rank: each rank dies with it (trainer/training/distributed.py
`bind_to_launcher`: a parent-death signal on Linux, a watch on its parent elsewhere) and holds
the emotion's ranks lock while it lives (trainer/jobs/locks.py); a rank still left when the
launcher ends is killed before the launcher lets go of the lock.

The launcher reports each failed rank with its exit status, and with the message a rank records
through TORCHELASTIC_ERROR_FILE, so when a rank dies (killed, out of memory, an exception) this
process writes the job's final one-line error naming it; rank 0 cannot, since it is stopped as
soon as any rank fails, and writes only its own one-line errors (a raw collective error, which
is what a lost peer looks like from rank 0, is left to this process). The last checkpoint stays
as rank 0 wrote it, so `train --resume` continues the job on any number of ranks.

A SIGTERM or SIGINT (`jobs stop`, Ctrl-C in the foreground) is passed on to every rank; the ranks
agree on the step to stop at, rank 0 checkpoints, and all exit cleanly.

For several machines, `python -m trainer.jobs.launch prepare <train arguments>` creates the job
folder without starting it and prints its path; torchrun then runs `trainer.jobs.run` on it on
every machine (README: "Many GPUs and many machines").
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.common.device import pick_device
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome, resolve_home
from trainer.jobs.control import LOG_FILE, prepare_job, read_job
from trainer.jobs.locks import EmotionLock
from trainer.training.checkpoint import CHECKPOINT_DIR, META, find_checkpoint
from trainer.training.config import TrainConfig
from trainer.training.distributed import LAUNCHER_PID, check_ranks, usable_cores
from trainer.training.events import EVENTS_FILE, FINAL_KINDS, EventReader, emit

if TYPE_CHECKING:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

# Set for the ranks of a launched job, to the job id: this process holds the emotion's lock.
SUPERVISED = "POETSTUDIO_SUPERVISED"
RANK_MODULE = "trainer.jobs.run"
# The agent leaves these signals to us, so that a stop reaches the ranks as a request to stop,
# and is not turned into the launcher's own shutdown, which kills the ranks after 30 seconds.
AGENT_SIGNALS = "SIGHUP,SIGQUIT"
FORWARD_POLL_S = 0.2
# How long the launcher waits for ranks it killed to be gone before it lets go of the lock.
RANKS_GONE_S = 10.0


def job_command(job_dir: Path, nproc: int) -> list[str]:
    """The command of a job's process: the job itself on one rank, this launcher on several."""
    module = "trainer.jobs.launch" if nproc > 1 else RANK_MODULE
    return [sys.executable, "-m", module, str(job_dir)]


def job_nproc(job: dict[str, Any]) -> int:
    """The number of ranks a job's file asks for (1 for jobs written before --nproc existed)."""
    return int((job.get("config") or {}).get("nproc", 1))


def torchrun_args(job_dir: Path, nproc: int) -> list[str]:
    """torchrun's arguments for one machine: a private rendezvous, no restarts, our ranks."""
    return [
        "--standalone",  # a free port of its own, so that jobs side by side never meet
        "--nproc-per-node",
        str(nproc),
        "--max-restarts",
        "0",  # a failure ends the job; `train --resume` continues it, knowingly
        "-m",
        RANK_MODULE,
        str(job_dir),
    ]


class StopForwarder:
    """Passes a stop request to every rank, including ranks that start after it arrived."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._signalled: set[int] = set()
        self._done = threading.Event()

    def request(self, signum: int, _frame: object) -> None:
        """Signal handler: ask every rank to checkpoint and stop."""
        print(f"received {signal.Signals(signum).name}; asking every rank to stop", flush=True)
        if not self.requested.is_set():
            self.requested.set()
            threading.Thread(target=self._forward, daemon=True).start()

    def close(self) -> None:
        """Stop forwarding: the ranks are gone."""
        self._done.set()

    def _forward(self) -> None:
        import psutil

        while not self._done.is_set():
            for child in psutil.Process().children():
                try:
                    if child.pid not in self._signalled and RANK_MODULE in child.cmdline():
                        child.send_signal(signal.SIGTERM)
                        self._signalled.add(child.pid)
                except psutil.Error:
                    continue
            self._done.wait(FORWARD_POLL_S)


def supervise(job_dir: Path) -> int:
    """Run the job in `job_dir` on its ranks; return the process exit code."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    job_dir = job_dir.resolve()
    home = DataHome(job_dir.parent.parent)
    events = job_dir / EVENTS_FILE
    forwarder = StopForwarder()
    signal.signal(signal.SIGINT, forwarder.request)
    signal.signal(signal.SIGTERM, forwarder.request)
    lock = None
    try:
        job = read_job(job_dir)
        if "config" not in job:
            raise PoetstudioError(
                f"job file {job_dir / 'job.json'} holds no training config; start a new job"
            )
        config = TrainConfig.from_dict(job["config"])
        check_ranks(pick_device(job.get("device") or config.device), config.nproc)
        lock = EmotionLock(home, config.emotion)
        lock.acquire(job_dir.name)
        # Only what this run writes matters below: not the events of the job's earlier runs.
        reader = EventReader(events, from_end=True)
        try:
            _launch(job_dir, config.nproc)
        except ChildFailedError as exc:
            written = {record["event"] for record in reader.read_new()}
            final = final_event(exc, config, job_dir, written, forwarder.requested.is_set())
            if final is None:
                return 1
            kind, text = final
            emit(events, kind, **{"reason" if kind == "stopped" else "message": text})
            print(f"{kind}: {text}", flush=True)
            return 0 if kind == "stopped" else 1
        return 0
    except PoetstudioError as exc:
        emit(events, "error", message=str(exc))
        print(f"error: {exc}", flush=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - the job must always end with an event
        traceback.print_exc()
        emit(events, "error", message=f"{type(exc).__name__}: {exc}; see {job_dir / LOG_FILE}")
        return 1
    finally:
        forwarder.close()
        end_ranks()
        if lock is not None:
            lock.release()


def end_ranks() -> list[int]:
    """Kill every rank of this launcher still alive; return their pids.

    torchrun ends the ranks of a failed job itself, but gives up on one that neither SIGTERM nor
    SIGKILL ended in its wait; a job is over only when all its ranks are.
    """
    import psutil

    ranks = []
    for child in psutil.Process().children(recursive=True):
        try:
            if RANK_MODULE in child.cmdline():
                child.kill()
                ranks.append(child)
        except psutil.Error:
            continue
    psutil.wait_procs(ranks, timeout=RANKS_GONE_S)
    return [rank.pid for rank in ranks]


def _launch(job_dir: Path, nproc: int) -> None:
    """torchrun's launcher, in this process; raises ChildFailedError naming the failed ranks."""
    from torch.distributed.run import parse_args, run

    os.environ[SUPERVISED] = job_dir.name
    os.environ[LAUNCHER_PID] = str(os.getpid())  # each rank dies with this process
    # torchrun reads --signals-to-handle from PET_SIGNALS_TO_HANDLE; releases before that
    # option read TORCHELASTIC_SIGNALS_TO_HANDLE directly.
    os.environ["PET_SIGNALS_TO_HANDLE"] = AGENT_SIGNALS
    os.environ["TORCHELASTIC_SIGNALS_TO_HANDLE"] = AGENT_SIGNALS
    if "OMP_NUM_THREADS" not in os.environ:
        # torchrun would give each rank one thread; on the CPU the ranks share the cores.
        os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cores() // nproc))
    run(parse_args(torchrun_args(job_dir, nproc)))


def final_event(
    exc: ChildFailedError, config: TrainConfig, job_dir: Path, written: set[str], stopping: bool
) -> tuple[str, str] | None:
    """The job's final event (kind, text) for ranks that failed; None when rank 0 wrote one.

    The launcher lists failures in the order it saw them, then the ranks it ended itself with
    SIGTERM once one had failed. A rank killed by another signal (kill -9, the out-of-memory
    killer, a crash) is the cause, not the ranks that lost their peer after it; without one, the
    first failure seen is. After a stop request, ranks ended by that very signal (before they
    could take it as a request) make a `stopped` job.
    """
    failures = exc.failures
    ended = bool(written & set(FINAL_KINDS))
    terminated = (-signal.SIGTERM, -signal.SIGINT)
    if stopping and all(f.exitcode in terminated for f in failures.values()):
        return None if ended else ("stopped", "stop requested before training began")
    killed = [
        rank for rank, f in failures.items() if f.exitcode < 0 and f.exitcode not in terminated
    ]
    rank = (killed or list(failures))[0]
    failure = failures[rank]
    if rank == 0 and ended:
        return None
    if failure.exitcode < 0:
        how = f"was killed by {failure.signal_name()}"
    else:
        how = f"failed with exit code {failure.exitcode}"
        reason = _recorded_reason(failure)
        if reason:
            how += f" ({reason})"
    text = (
        f"rank {rank} of {config.nproc} {how}, so the job ended; {_kept(job_dir, config)}; "
        f"see {job_dir / LOG_FILE}"
    )
    return "error", text


def _recorded_reason(failure: ProcessFailure) -> str:
    """The one-line error a rank recorded in its error file, without the exception's type."""
    if not os.path.isfile(failure.error_file):
        return ""
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", "")
    text = str(message).strip().splitlines()
    return text[0].removeprefix("PoetstudioError: ") if text else ""


def _kept(job_dir: Path, config: TrainConfig) -> str:
    """What is left to continue from."""
    found = find_checkpoint(job_dir / CHECKPOINT_DIR)
    if found is None:
        return "no checkpoint had been written yet"
    try:
        step = json.loads((found / META).read_text(encoding="utf-8")).get("step")
    except (OSError, ValueError):
        step = None
    at = f" (step {step})" if isinstance(step, int) else ""
    return (
        f"the last checkpoint{at} is kept: continue with "
        f"`poetstudio train --emotion {config.emotion} --resume`"
    )


def main() -> None:
    """Process entry point: `<job folder>` to run a job, or `prepare <train arguments>`."""
    args = sys.argv[1:]
    if args[:1] == ["prepare"] and len(args) > 1:
        try:
            print(prepare_job(resolve_home(), args[1:], one_machine=False))
        except PoetstudioError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)
        return
    if len(args) != 1:
        print(
            "usage: python -m trainer.jobs.launch <job folder>\n"
            "       python -m trainer.jobs.launch prepare <train arguments>",
            file=sys.stderr,
        )
        sys.exit(2)
    sys.exit(supervise(Path(args[0])))


if __name__ == "__main__":
    main()
