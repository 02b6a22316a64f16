"""Training jobs: one folder and one detached process each, listed, followed and stopped by id.

A job folder `<home>/jobs/<job_id>/` holds `job.json` (id, emotion, arguments, config, pid),
`events.jsonl` (trainer/training/events.py), `log.txt` (the process's output) and `checkpoint/`.
Every job.json is read through one checked reader; a job whose file is damaged is listed as
`broken` with the reason, and never stops the other jobs from being listed, followed or resumed.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.common.atomic import atomic_write_json, sweep_staging
from trainer.common.emotions import MODEL_EMOTIONS, NEUTRAL
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.common.records import (
    BOOLEAN,
    NUMBER,
    PID,
    STRING,
    dataclass_schema,
    list_of,
    obj,
    one_of,
    optional,
    read_object,
    required,
)
from trainer.jobs.locks import busy_message, is_locked, ranks_alive
from trainer.training.checkpoint import CHECKPOINT_DIR, find_checkpoint
from trainer.training.config import TrainConfig, TrainRequest, check_block_size, parse_train_args
from trainer.training.events import EVENTS_FILE, JobProgress, read_progress

JOB_FILE = "job.json"
LOG_FILE = "log.txt"
_JOB_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[a-z]+-[0-9a-f]{4}$")
JOB_SCHEMA = {
    "id": optional(STRING),
    "emotion": required(one_of(*MODEL_EMOTIONS)),
    "args": optional(list_of(STRING)),
    "config": optional(obj(**dataclass_schema(TrainConfig))),  # the job process needs it
    "resume": optional(BOOLEAN),
    "created": optional(NUMBER),
    "resumed": optional(NUMBER),
    "device": optional(STRING, nullable=True),
    "pid": optional(PID, nullable=True),
}
BROKEN = "broken"


@dataclass
class JobInfo:
    """What a list of jobs shows for one job."""

    id: str
    path: Path
    emotion: str
    progress: JobProgress
    alive: bool

    @property
    def state(self) -> str:
        """running, done, stopped or error from the events; 'interrupted' if the process died.

        'broken' when the job's own file is damaged (the reason is in `progress.message`).
        """
        if self.progress.status in ("pending", "running") and not self.alive:
            return "interrupted"
        return self.progress.status

    @property
    def resumable(self) -> bool:
        """Whether `train --resume` can continue this job from its checkpoint."""
        if self.alive or self.state in ("done", BROKEN):
            return False
        return find_checkpoint(self.path / CHECKPOINT_DIR) is not None


def check_job_id(job_id: str) -> str:
    """Return `job_id` if it has the shape poetstudio gives ids, else raise (no paths)."""
    if not _JOB_ID.match(job_id):
        raise PoetstudioError(f"no such job {job_id!r}; `poetstudio jobs` lists the job ids")
    return job_id


def job_dir(home: DataHome, job_id: str) -> Path:
    """The folder of an existing job."""
    path = home.jobs / check_job_id(job_id)
    if not (path / JOB_FILE).is_file():
        raise PoetstudioError(f"no such job {job_id!r}; `poetstudio jobs` lists the job ids")
    return path


def read_job(path: Path) -> dict[str, Any]:
    """The checked job.json of a job folder; a one-line RecordError when it is damaged."""
    return read_object(
        path / JOB_FILE,
        JOB_SCHEMA,
        "job file",
        fix=f"this job cannot be resumed; delete {path} or start a new job",
    )


def new_job_id(emotion: str) -> str:
    """A sortable, unique id: date, time, emotion and a random suffix."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{emotion}-{secrets.token_hex(2)}"


def is_alive(pid: int | None, path: Path) -> bool:
    """Whether `pid` is running and is the job process of folder `path` (pids get reused)."""
    if not pid:
        return False
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return str(path) in process.cmdline()
    except (psutil.Error, OSError):
        return False


def job_alive(path: Path, job: dict[str, Any]) -> bool:
    """Whether job `job` (its job.json) in folder `path` still runs: its process, or a rank that
    outlived its launcher for an instant (which holds the emotion's ranks lock until it dies)."""
    if is_alive(job.get("pid"), path):
        return True
    if int((job.get("config") or {}).get("nproc", 1)) <= 1:
        return False
    return ranks_alive(DataHome(path.parent.parent), str(job.get("emotion", "")), path.name)


def rank_processes(path: Path) -> list[Any]:
    """The rank processes of the job in folder `path` (psutil processes), by their command."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = process.info.get("cmdline") or []
        if "trainer.jobs.run" in command and str(path) in command:
            found.append(process)
    return found


def broken_job(path: Path, reason: str) -> JobInfo:
    """The listing of a job whose job file is damaged: its emotion from its id, and `reason`."""
    parts = path.name.split("-")
    emotion = parts[2] if len(parts) == 4 else ""
    return JobInfo(path.name, path, emotion, JobProgress(status=BROKEN, message=reason), False)


def job_info(path: Path) -> JobInfo:
    """Read one job folder; a damaged job file makes a `broken` job that says why."""
    try:
        data = read_job(path)
    except PoetstudioError as exc:
        return broken_job(path, str(exc))
    return JobInfo(
        id=path.name,
        path=path,
        emotion=str(data.get("emotion", "")),
        progress=read_progress(path / EVENTS_FILE),
        alive=job_alive(path, data),
    )


def job_folders(home: DataHome) -> list[Path]:
    """The folders of all jobs in the data home, newest first."""
    if not home.jobs.is_dir():
        return []
    return [
        path
        for path in sorted(home.jobs.iterdir(), reverse=True)
        if _JOB_ID.match(path.name) and (path / JOB_FILE).is_file()
    ]


def list_jobs(home: DataHome) -> list[JobInfo]:
    """All jobs in the data home, newest first (read once; `JobWatcher` keeps a list current)."""
    return [job_info(path) for path in job_folders(home)]


def latest_resumable(home: DataHome, emotion: str) -> JobInfo:
    """The newest unfinished job of `emotion` with a checkpoint, or a one-line error."""
    for info in list_jobs(home):
        if info.emotion == emotion and info.resumable:
            return info
    raise PoetstudioError(
        f"no unfinished {emotion} job with a checkpoint to resume; "
        f"start one with `poetstudio train --emotion {emotion}`"
    )


def preflight(home: DataHome, config: TrainConfig) -> None:
    """Catch, before a process starts, what fails fast: a missing dataset or an unloadable base."""
    from trainer.common.bases import PRESETS, resolve_base
    from trainer.corpus.dataset import load_manifest
    from trainer.training.manifest import read_manifest

    load_manifest(home, config.dataset)
    if config.emotion != NEUTRAL and not config.from_base:
        read_manifest(home.models / NEUTRAL)  # a damaged neutral model, which this one starts from
    if config.base and config.base not in PRESETS:
        resolve_base(config.base, home)
    check_block_size(config, home)


def resume_target(home: DataHome, request: TrainRequest) -> Path:
    """The job folder `request` (with --resume) continues, once its options are checked.

    A ResumeConflict says which option differs from the job's own settings.
    """
    path = latest_resumable(home, request.config.emotion).path
    data = read_job(path)
    if "config" in data:
        request.check_resume(TrainConfig.from_dict(data["config"]))
    return path


def check_machine(nproc: int, device: str | None) -> None:
    """Refuse more ranks than this machine has devices for (one-line error); see check_ranks."""
    if nproc > 1:
        from trainer.common.device import pick_device
        from trainer.training.distributed import check_ranks

        check_ranks(pick_device(device), nproc)


def prepare_job(home: DataHome, args: list[str], *, one_machine: bool = True) -> Path:
    """Validate `train` arguments, check the lock, and create (or reopen) the job folder.

    `one_machine`: the job's ranks all run here (bounded by this machine's devices); False for
    a job that torchrun starts over several machines.
    """
    request = parse_train_args(args)
    emotion = request.config.emotion
    home.ensure()
    running = is_locked(home, emotion)
    if running:
        raise PoetstudioError(busy_message(emotion, running))
    if request.resume:
        path = resume_target(home, request)
        sweep_staging(path)  # a checkpoint whose writer was killed mid-way
        data = read_job(path)
        data.update(resume=True, resumed=time.time(), device=request.config.device)
        # The resume-safe options given (--nproc: another number of ranks, --compile, ...)
        # hold from this run on; --device holds for this run only, as `device` above.
        if "config" in data:
            data["config"].update(request.resume_overrides())
            if one_machine:
                config = data["config"]
                check_machine(int(config.get("nproc", 1)), data["device"] or config.get("device"))
        atomic_write_json(path / JOB_FILE, data)
        return path
    if one_machine:
        check_machine(request.config.nproc, request.config.device)
    preflight(home, request.config)
    job_id = new_job_id(emotion)
    path = home.jobs / job_id
    path.mkdir(parents=True)
    atomic_write_json(
        path / JOB_FILE,
        {
            "id": job_id,
            "emotion": emotion,
            "args": list(args),
            "config": request.config.to_dict(),
            "resume": False,
            "created": time.time(),
            "pid": None,
        },
    )
    return path


def spawn(path: Path, gpu: str | None = None) -> subprocess.Popen[bytes]:
    """Start the training process of job folder `path` in its own session, output to log.txt.

    `gpu` names the one CUDA device it may see (CUDA_VISIBLE_DEVICES); None leaves ours.
    """
    from trainer.jobs.launch import job_command, job_nproc

    root = Path(__file__).resolve().parents[2]
    command = job_command(path, job_nproc(read_job(path)))  # torchrun's launcher when nproc > 1
    with open(path / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the shell reaches it only through stop_job
            cwd=root,
            env=_child_env(root, gpu),
        )
    data = read_job(path)
    data["pid"] = process.pid
    atomic_write_json(path / JOB_FILE, data)
    return process


def _child_env(root: Path, gpu: str | None = None) -> dict[str, str]:
    """The environment of a training process: ours, with this checkout importable."""
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return env


def start_job(home: DataHome, args: list[str]) -> str:
    """Start a detached training process for `train` arguments `args`; return its job id.

    `args` are those of `poetstudio train`, e.g. ["--emotion", "trust", "--max-steps", "200"];
    with "--resume" the newest unfinished job of that emotion continues in its own folder.
    """
    path = prepare_job(home, args)
    spawn(path)
    return path.name


def chain_args(home: DataHome, emotion: str, args: list[str]) -> list[str]:
    """The `train` arguments of one emotion in a `--all` run.

    With `--resume`, an emotion that has an unfinished job continues it; the others start afresh.
    """
    own = ["--emotion", emotion, *args]
    if "--resume" in args and not any(
        info.emotion == emotion and info.resumable for info in list_jobs(home)
    ):
        own.remove("--resume")
    return own


def start_chain(home: DataHome, args: list[str], parallel: int | None = None) -> int:
    """Start a detached process that trains neutral, then the 8 emotions; return its pid.

    `parallel` emotions train at once after neutral (None: the chain chooses, see chain.py).
    """
    for emotion in MODEL_EMOTIONS:
        parse_train_args(chain_args(home, emotion, args))
    home.ensure()
    root = Path(__file__).resolve().parents[2]
    log = home.jobs / "chain-log.txt"
    extra = ["--parallel", str(parallel)] if parallel is not None else []
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "trainer.jobs.chain", str(home.root), *extra, *args],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=root,
            env=_child_env(root),
        )
    return process.pid


def stop_job(home: DataHome, job_id: str, wait_s: float = 0.0) -> bool:
    """Ask a running job to checkpoint and stop (SIGTERM); True if it was running.

    With `wait_s`, wait up to that long for the job to write its final event.
    """
    path = job_dir(home, job_id)
    job = read_job(path)
    pid = job.get("pid")
    if pid is not None and is_alive(pid, path):
        os.kill(int(pid), signal.SIGTERM)
    elif job_alive(path, job):
        # Ranks whose launcher died can no longer stop together: they are ended at once.
        for process in rank_processes(path):
            process.kill()
    else:
        return False
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and job_alive(path, job):
        time.sleep(0.1)
    return True
