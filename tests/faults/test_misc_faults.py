"""Everything else of the hardening issue: a full disk at a checkpoint, two runs of one emotion
at once, eval's preflight, zero-width joiners, the jobs table at 80 columns, test isolation."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import trainer.common.home
from studio.cli import app
from studio.core.generation.text import clean_first_line, clean_output
from tests.helpers.training import write_dataset
from trainer.common.errors import PoetstudioError
from trainer.common.home import ENV_VAR, DataHome, resolve_home
from trainer.jobs.locks import EmotionLock, holder, is_locked, lock_path
from trainer.training.checkpoint import load_checkpoint, save_checkpoint

runner = CliRunner()
TORCH_FULL_DISK = (
    "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
    "data/0: file write failed"
)


def _state(step: int) -> dict[str, object]:
    import torch

    return {"step": step, "optimizer": {"m": torch.ones(3) * step}}


def _weights() -> dict[str, object]:
    import torch

    return {"w": torch.zeros(4)}


@pytest.mark.parametrize(
    "failure",
    [RuntimeError(TORCH_FULL_DISK), OSError(errno.ENOSPC, "No space left on device")],
    ids=["torch-enforce-fail", "oserror-enospc"],
)
def test_a_full_disk_at_a_checkpoint_says_so_and_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    import torch

    folder = tmp_path / "job" / "checkpoint"
    save_checkpoint(folder, _weights(), _state(1))

    def full_disk(*_args: object, **_kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(PoetstudioError) as caught:
        save_checkpoint(folder, _weights(), _state(2))
    message = str(caught.value)
    assert message.startswith("no space left on device") and str(folder.parent) in message
    assert "\n" not in message and "enforce fail" not in message
    # Nothing staged is left behind, and the previous checkpoint still loads.
    assert sorted(p.name for p in folder.parent.iterdir()) == ["checkpoint"]
    monkeypatch.undo()
    assert load_checkpoint(folder)[1]["step"] == 1


def test_another_write_failure_at_a_checkpoint_names_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    def refused(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", "state.pt")

    monkeypatch.setattr(torch, "save", refused)
    folder = tmp_path / "checkpoint"
    with pytest.raises(PoetstudioError, match="could not write the checkpoint in .*Permission"):
        save_checkpoint(folder, _weights(), _state(1))


def test_a_probe_never_writes_its_placeholder_into_the_lock(home: DataHome) -> None:
    assert is_locked(home, "trust") is None
    assert holder(lock_path(home, "trust")) == ""


def test_a_run_starting_during_a_probe_is_not_refused(home: DataHome) -> None:
    path = lock_path(home, "trust")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_SH)  # what is_locked holds for an instant
    threading.Timer(0.1, os.close, args=(fd,)).start()
    lock = EmotionLock(home, "trust")
    lock.acquire("20250101-000000-trust-aaaa")
    try:
        assert is_locked(home, "trust") == "20250101-000000-trust-aaaa"
    finally:
        lock.release()
    assert is_locked(home, "trust") is None


def test_a_second_run_of_one_emotion_names_the_real_job(home: DataHome) -> None:
    first = EmotionLock(home, "trust")
    first.acquire("20250101-000000-trust-aaaa")
    try:
        with pytest.raises(PoetstudioError) as caught:
            EmotionLock(home, "trust").acquire("20250101-000001-trust-bbbb")
    finally:
        first.release()
    message = str(caught.value)
    assert "job 20250101-000000-trust-aaaa" in message and "probe" not in message


def test_two_runs_starting_together_refuse_one_naming_the_other(home: DataHome) -> None:
    ids = [f"20250101-00000{n}-trust-000{n}" for n in range(2)]
    locks = [EmotionLock(home, "trust") for _ in ids]
    errors: list[str] = []
    probes: list[str | None] = []

    def start(index: int) -> None:
        probes.append(is_locked(home, "trust"))
        try:
            locks[index].acquire(ids[index])
            time.sleep(1.0)  # the run holds the lock while the other one tries
        except PoetstudioError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=start, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for lock in locks:
        lock.release()
    assert len(errors) == 1, errors
    assert any(f"job {job_id}" in errors[0] for job_id in ids) and "probe" not in errors[0]
    assert all(probe is None or probe in ids for probe in probes)


def test_eval_checks_its_dataset_before_loading_any_model(
    home: DataHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    import studio.core.generation.poet

    def no_poet(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a model was about to load")

    monkeypatch.setattr(studio.core.generation.poet.Poet, "__init__", no_poet)
    result = runner.invoke(app, ["eval", "--quick", "--dataset", "nope"])
    assert result.exit_code == 1
    assert result.output.startswith("error: dataset 'nope' is not built; run `poetstudio corpus")
    assert result.output.count("\n") == 1


def test_eval_checks_its_out_folder_before_loading_any_model(
    home: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import studio.core.generation.poet

    def no_poet(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a model was about to load")

    monkeypatch.setattr(studio.core.generation.poet.Poet, "__init__", no_poet)
    write_dataset(home)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["eval", "--quick", "--out", str(blocker / "reports")])
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot write the reports to ")
    assert f"{blocker} is a file, not a folder" in result.output
    assert blocker.read_text() == "not a folder"


def test_a_report_folder_that_does_not_exist_yet_is_fine_and_not_created(tmp_path: Path) -> None:
    from studio.core.evalrun import check_report_folder

    check_report_folder(tmp_path / "new" / "reports")
    assert not (tmp_path / "new").exists()


FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man ZWJ woman ZWJ girl
HEART = "\u2764\ufe0f"  # a heart with the emoji variation selector
SCOTLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"


def test_zero_width_joiners_in_a_first_line_keep_emoji_whole() -> None:
    line = f"my {FAMILY} and {HEART} from {SCOTLAND}"
    assert clean_first_line(line) == line
    assert clean_output(line + "\n") == line + "\n"


def test_bidi_overrides_and_controls_are_still_dropped() -> None:
    hostile = "a\u202eevil\u202c b\u2066x\u2069 c\u200e\x1b[31m d\ufeff"
    assert clean_first_line(hostile) == "aevil bx c[31m d"
    assert clean_output(hostile) == "aevil bx c[31m d"


def test_the_jobs_table_at_80_columns_keeps_every_job_id_whole(
    home: DataHome, tiny_base: Path
) -> None:
    from trainer.jobs.control import prepare_job

    write_dataset(home)
    path = prepare_job(home, ["--emotion", "anticipation", "--base", str(tiny_base)])
    result = runner.invoke(app, ["jobs"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert path.name in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80


def test_every_test_runs_in_its_own_home(tmp_path: Path) -> None:
    assert os.environ[ENV_VAR] == str(tmp_path / "home")
    assert resolve_home().root == (tmp_path / "home").resolve()
    assert trainer.common.home.default_root() == tmp_path / "platform-home"
    assert os.environ["XDG_DATA_HOME"] == str(tmp_path / "xdg-data")


def test_without_the_variable_the_default_home_is_private_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR)
    assert resolve_home().root == (tmp_path / "platform-home").resolve()
