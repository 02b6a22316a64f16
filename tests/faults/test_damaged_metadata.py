"""Damaged metadata: manifests, job files, events and dataset lines read through one checked reader.

Each case ends in a one-line error that names the file (and line), or in correct behaviour: a
broken user model is reported instead of silently replaced by the bundled one, and one broken job
never hides, blocks or breaks the others.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

import models
from studio.cli import app
from studio.core.registry import resolve_model
from tests.helpers.models import build_tiny_lora
from tests.helpers.training import tiny_config, write_dataset
from trainer.common.emotions import LABELS
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.common.records import RecordError
from trainer.jobs.control import JOB_FILE, list_jobs, prepare_job, start_job
from trainer.training.checkpoint import META
from trainer.training.config import TrainConfig
from trainer.training.events import EVENTS_FILE, read_progress

runner = CliRunner()


def one_error_line(result: object) -> str:
    """The single `error: ...` line a failed command printed; fails on a traceback or more lines."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


# ----- model manifests -----------------------------------------------------------------------

Damage = Callable[[dict], object]
DAMAGES: dict[str, str | Damage] = {
    "truncated": '{"format": 1, "method": "lo',
    "a list": "[1, 2, 3]",
    "base as a string": lambda m: {**m, "base": "abc"},
    "ppl as a word": lambda m: {**m, "metrics": {"best_val_ppl": "high"}},
    "steps as a word": lambda m: {**m, "steps": "ten"},
    "method as a number": lambda m: {**m, "method": 5},
    "poem tokens as a list": lambda m: {**m, "poem_tokens": [0, 1]},
}


def damage_manifest(folder: Path, damage: str | Damage) -> None:
    path = folder / "poetstudio.json"
    if isinstance(damage, str):
        path.write_text(damage)
    else:
        path.write_text(json.dumps(damage(json.loads(path.read_text()))))


@pytest.fixture
def bundled(tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bundled-models folder with a healthy joy model, used by the CLI too."""
    folder = tmp_path / "bundled"
    build_tiny_lora(tiny_base, folder / "joy", "joy", seed=4)
    monkeypatch.setattr(models, "BUNDLED_DIR", folder)
    return folder


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_damaged_user_manifest_is_an_error_not_a_silent_fallback_to_the_bundled_model(
    damage: str | Damage, home: DataHome, tiny_base: Path, bundled: Path
) -> None:
    user = build_tiny_lora(tiny_base, home.models / "joy", "joy")
    damage_manifest(user, damage)
    line = one_error_line(runner.invoke(app, ["write", "-e", "joy", "--max-tokens", "5"]))
    assert "corrupt manifest" in line and str(user / "poetstudio.json") in line
    assert "poetstudio train --emotion joy" in line and f"delete {user}" in line
    # The bundled model is used once the user's folder is gone, and only then.
    shutil.rmtree(user)
    assert resolve_model("joy", home, bundled).source == "bundled"


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_models_lists_a_damaged_user_model_as_broken_with_the_reason(
    damage: str | Damage, home: DataHome, tiny_base: Path, bundled: Path
) -> None:
    build_tiny_lora(tiny_base, home.models / "neutral", "neutral", seed=2)
    user = build_tiny_lora(tiny_base, home.models / "joy", "joy")
    damage_manifest(user, damage)
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "bundled (hidden by user)" in result.stdout
    [note] = [line for line in result.stdout.splitlines() if line.startswith("broken: ")]
    assert str(user / "poetstudio.json") in note and "hides the bundled joy model" in note
    assert "neutral" in result.stdout


async def test_the_studio_marks_a_damaged_model_broken_in_the_picker_and_the_training_panel(
    home: DataHome, tiny_base: Path, tmp_path: Path
) -> None:
    from textual.widgets import DataTable, OptionList

    from tests.tui.test_app import make_app, settle
    from trainer.common.emotions import MODEL_EMOTIONS

    build_tiny_lora(tiny_base, home.models / "neutral", "neutral", seed=2)
    damage_manifest(build_tiny_lora(tiny_base, home.models / "joy", "joy"), "[1]")
    app_ = make_app(home, tmp_path)
    async with app_.run_test(size=(120, 40)) as pilot:
        await settle(app_, pilot)
        options = app_.query_one("#emotion-list", OptionList)
        assert "broken" in str(options.get_option("joy").prompt)
        assert "untrained" in str(options.get_option("anger").prompt)
        table = app_.query_one("#models-table", DataTable)
        row = table.get_row_at(MODEL_EMOTIONS.index("joy"))
        assert str(row[1]) == "broken" and "not a JSON object" in str(row[5])


def test_a_damaged_neutral_manifest_stops_a_child_run_before_it_spawns(
    home: DataHome, tiny_base: Path
) -> None:
    from trainer.training.start import plan_start

    write_dataset(home)
    neutral = build_tiny_lora(tiny_base, home.models / "neutral", "neutral", seed=2)
    damage_manifest(neutral, DAMAGES["base as a string"])
    args = ["--emotion", "trust", "--base", str(tiny_base), "--max-steps", "2"]
    with pytest.raises(PoetstudioError) as caught:
        start_job(home, args)
    message = str(caught.value)
    assert str(neutral / "poetstudio.json") in message and "base is 'abc'" in message
    assert "\n" not in message and not list(home.jobs.glob("2*"))
    # The child process itself (plan_start) reads it the same way: an error, not AttributeError.
    with pytest.raises(PoetstudioError, match="base is 'abc'"):
        plan_start(TrainConfig(emotion="trust"), home)


# ----- jobs ------------------------------------------------------------------------------------

HEALTHY = "20250101-120000-trust-aaaa"
GARBAGE_JOBS: dict[str, str | Callable[[dict], dict]] = {
    "20250102-120000-joy-bbbb": "{not json",
    "20250103-120000-joy-cccc": "[1, 2]",
    "20250104-120000-fear-dddd": lambda job: {**job, "pid": "abc"},
    "20250105-120000-fear-eeee": lambda job: {**job, "pid": -5},
    "20250106-120000-anger-ffff": lambda job: {**job, "config": {**job["config"], "lr": "fast"}},
    "20250107-120000-trust-abcd": lambda job: {**job, "emotion": None},
}


def write_job(home: DataHome, job_id: str, emotion: str, events: list[str]) -> Path:
    """A stopped job with a checkpoint, written as the trainer writes one."""
    folder = home.jobs / job_id
    (folder / "checkpoint").mkdir(parents=True)
    (folder / "checkpoint" / META).write_text("{}")
    job = {
        "id": job_id,
        "emotion": emotion,
        "args": ["--emotion", emotion],
        "config": TrainConfig(emotion=emotion).to_dict(),
        "resume": False,
        "created": 1.0,
        "pid": None,
    }
    (folder / JOB_FILE).write_text(json.dumps(job))
    (folder / EVENTS_FILE).write_text("".join(line + "\n" for line in events))
    return folder


GOOD_EVENTS = [
    json.dumps({"event": "start", "time": 1.0, "emotion": "trust", "total_steps": 10}),
    json.dumps({"event": "step", "time": 2.0, "step": 3, "smooth_loss": 4.5, "lr": 0.001}),
    json.dumps({"event": "stopped", "time": 3.0, "step": 3, "reason": "stop requested"}),
]


@pytest.fixture
def jobs_home(home: DataHome) -> DataHome:
    """One healthy, resumable trust job among six whose job.json is garbage."""
    write_job(home, HEALTHY, "trust", GOOD_EVENTS)
    for job_id, damage in GARBAGE_JOBS.items():
        folder = write_job(home, job_id, job_id.split("-")[2], GOOD_EVENTS)
        if isinstance(damage, str):
            (folder / JOB_FILE).write_text(damage)
        else:
            job = json.loads((folder / JOB_FILE).read_text())
            (folder / JOB_FILE).write_text(json.dumps(damage(job)))
    return home


def test_garbage_job_files_are_listed_as_broken_beside_the_healthy_job(jobs_home: DataHome) -> None:
    infos = {info.id: info for info in list_jobs(jobs_home)}
    assert set(infos) == {HEALTHY, *GARBAGE_JOBS}
    healthy = infos.pop(HEALTHY)
    assert healthy.state == "stopped" and healthy.resumable and healthy.progress.step == 3
    for info in infos.values():
        assert info.state == "broken" and not info.resumable and not info.alive
        assert str(info.path / JOB_FILE) in info.progress.message
        assert "\n" not in info.progress.message
    assert "pid is -5, not a process id" in infos["20250105-120000-fear-eeee"].progress.message
    assert "config.lr is 'fast'" in infos["20250106-120000-anger-ffff"].progress.message


def test_the_jobs_command_lists_every_job_and_says_why_the_broken_ones_are(
    jobs_home: DataHome,
) -> None:
    result = runner.invoke(app, ["jobs"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    for job_id in (HEALTHY, *GARBAGE_JOBS):
        assert job_id in result.stdout
    broken = [line for line in result.stdout.splitlines() if line.startswith("broken: ")]
    assert len(broken) == len(GARBAGE_JOBS)


def test_jobs_stop_works_on_a_healthy_job_and_refuses_a_bad_pid_without_signalling(
    jobs_home: DataHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer.jobs.control

    signalled: list[tuple[int, int]] = []
    monkeypatch.setattr(
        trainer.jobs.control.os, "kill", lambda pid, sig: signalled.append((pid, sig))
    )
    result = runner.invoke(app, ["jobs", "stop", HEALTHY])
    assert result.exit_code == 0 and "is not running" in result.stdout
    for job_id in ("20250104-120000-fear-dddd", "20250105-120000-fear-eeee"):
        line = one_error_line(runner.invoke(app, ["jobs", "stop", job_id]))
        assert "corrupt job file" in line and job_id in line
    assert signalled == []


def test_jobs_follow_of_a_healthy_job_works_beside_broken_ones(jobs_home: DataHome) -> None:
    result = runner.invoke(app, ["jobs", "follow", HEALTHY])
    assert result.exit_code == 0, result.output
    assert "stopped at step 3" in result.stderr and "Traceback" not in result.output


def test_resume_finds_the_healthy_job_past_broken_ones(jobs_home: DataHome) -> None:
    # A broken trust job is newer than the healthy one; --resume skips it.
    path = prepare_job(jobs_home, ["--emotion", "trust", "--resume"])
    assert path.name == HEALTHY
    assert json.loads((path / JOB_FILE).read_text())["resume"] is True
    line = one_error_line(runner.invoke(app, ["jobs", "follow", "20250107-120000-trust-abcd"]))
    assert "emotion is null" in line


@pytest.mark.parametrize("job_text", ["{oops", json.dumps({"emotion": "trust"})])
def test_the_job_process_ends_a_damaged_job_with_a_one_line_error_event(
    job_text: str, home: DataHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from trainer.jobs import run as jobrun

    monkeypatch.setattr(signal, "signal", lambda *_args: None)  # keep pytest's own handlers
    folder = write_job(home, HEALTHY, "trust", [])
    (folder / JOB_FILE).write_text(job_text)
    assert jobrun.run(folder) == 1
    [event] = [json.loads(line) for line in (folder / EVENTS_FILE).read_text().splitlines()]
    assert event["event"] == "error" and str(folder / JOB_FILE) in event["message"]
    assert "\n" not in event["message"] and "Error:" not in event["message"]


BAD_EVENTS = [
    "not json at all",
    json.dumps([1, 2]),
    json.dumps({"event": "step", "time": 2.5, "step": "abc"}),
    json.dumps({"event": "start", "time": 2.6, "total_steps": "many"}),
    json.dumps({"event": "eval", "time": 2.7, "val_ppl": "low"}),
    json.dumps({"event": "bogus", "time": 2.8}),
    json.dumps({"event": "step", "step": 4}),
]


def test_bad_event_lines_are_skipped_with_a_note_and_never_break_a_listing(home: DataHome) -> None:
    events = [*GOOD_EVENTS[:2], *BAD_EVENTS, GOOD_EVENTS[2]]
    folder = write_job(home, HEALTHY, "trust", events)
    progress = read_progress(folder / EVENTS_FILE)
    assert progress.status == "stopped" and progress.step == 3 and progress.total_steps == 10
    assert progress.skipped == len(BAD_EVENTS)
    assert f"{folder / EVENTS_FILE} line 3: not valid JSON" in progress.note
    result = runner.invoke(app, ["jobs"])
    assert result.exit_code == 0, result.output
    assert f"note: job {HEALTHY}: {len(BAD_EVENTS)} bad event line(s) skipped" in result.stdout
    followed = runner.invoke(app, ["jobs", "follow", HEALTHY])
    assert followed.exit_code == 0 and "Traceback" not in followed.output


# ----- datasets ----------------------------------------------------------------------------------


def full_manifest(home: DataHome, name: str = "clean") -> Path:
    """Give a fixture dataset the manifest fields a real build writes, as `corpus stats` reads."""
    path = home.datasets / name / "manifest.json"
    manifest = json.loads(path.read_text())
    row = {"poems": 1, "train": 1, "valid": 0, "mean_lines": 2.0, "mean_words": 9.0}
    manifest.update(
        created="2025-01-01T00:00:00+00:00",
        source={"kind": "txt", "path": "poems.txt", "sha256": "0" * 64, "lines": 10},
        split={"name": "clean"},
        labeller={"min_margin": 1},
        labels={label: row for label in LABELS},
    )
    path.write_text(json.dumps(manifest))
    return path


def damage_line(home: DataHome, number: int, text: str, name: str = "clean") -> Path:
    """Replace line `number` (1-based) of a dataset's poems.jsonl with `text`."""
    path = home.datasets / name / "poems.jsonl"
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return path


def poem_line(**changes: object) -> str:
    row = {"id": "x", "label": "trust", "split": "train", "counts": {}, "lines": 2, "words": 9}
    return json.dumps({**row, "gid": None, "text": "a\nb", **changes})


BAD_LINES = {
    "garbage": "}}} not a poem {{{",
    "truncated": '{"id": "p7", "label": "trust", "split": "train", "text": "The lamps',
    "words as a word": poem_line(words="many"),
    "unknown label": poem_line(label="bliss"),
    "text as a number": poem_line(text=5),
    "counts as a list": poem_line(counts=[1, 2]),
}


@pytest.mark.parametrize("bad", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_a_damaged_dataset_line_is_an_error_naming_the_file_and_its_line(
    bad: str, home: DataHome
) -> None:
    from trainer.corpus.dataset import iter_poems

    write_dataset(home)
    full_manifest(home)
    path = damage_line(home, 7, bad)
    with pytest.raises(RecordError) as caught:
        list(iter_poems(home, "clean"))
    assert caught.value.line == 7 and caught.value.path == path
    line = one_error_line(runner.invoke(app, ["corpus", "stats", "--samples", "1"]))
    assert f"{path} line 7" in line and "corpus build" in line


def test_training_reports_a_damaged_dataset_line_with_its_file_and_line_number(
    home: DataHome, tiny_base: Path
) -> None:
    from trainer.training.loop import train

    write_dataset(home)
    # Line 99 is a trust poem of the training split (the fixture writes 80 neutral ones first).
    path = damage_line(home, 99, BAD_LINES["truncated"])
    job = home.jobs / "20250101-120000-trust-0000"
    job.mkdir(parents=True)
    with pytest.raises(PoetstudioError) as caught:
        train(tiny_config(tiny_base), home, job)
    message = str(caught.value)
    assert f"{path} line 99: not valid JSON" in message and "\n" not in message


def test_eval_training_texts_report_a_damaged_line_not_a_decode_error(home: DataHome) -> None:
    from trainer.training.packing import label_texts

    write_dataset(home)
    damage_line(home, 3, BAD_LINES["garbage"])
    with pytest.raises(RecordError, match="poems.jsonl line 3: not valid JSON"):
        label_texts(home, "clean", "neutral", "valid", 100)


MANIFESTS = {
    "a list": "[]",
    "truncated": '{"format": 1, "poems": 1',
    "poems as a word": json.dumps({"poems": "many", "counts": {}}),
    "counts as a list": json.dumps({"poems": 1, "counts": [1]}),
}


@pytest.mark.parametrize("text", MANIFESTS.values(), ids=MANIFESTS.keys())
def test_a_wrongly_shaped_dataset_manifest_is_an_error_naming_it(text: str, home: DataHome) -> None:
    from trainer.corpus.dataset import load_manifest

    write_dataset(home)
    path = home.datasets / "clean" / "manifest.json"
    path.write_text(text)
    with pytest.raises(RecordError, match="corpus build"):
        load_manifest(home, "clean")
    line = one_error_line(runner.invoke(app, ["corpus", "stats"]))
    assert f"corrupt dataset manifest {path}" in line


@pytest.mark.parametrize(
    "change",
    [{"source": "x"}, {"labels": []}, {"labels": {}}, {"labeller": {"min_margin": "one"}}],
    ids=["source as a string", "labels as a list", "no labels", "margin as a word"],
)
def test_corpus_stats_refuses_a_manifest_missing_what_it_shows(
    change: dict, home: DataHome
) -> None:
    write_dataset(home)
    path = full_manifest(home)
    assert runner.invoke(app, ["corpus", "stats"]).exit_code == 0
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    line = one_error_line(runner.invoke(app, ["corpus", "stats"]))
    assert str(path) in line and "corpus build" in line


def test_a_healthy_dataset_still_reads_after_the_checks(home: DataHome) -> None:
    from trainer.corpus.dataset import iter_poems

    write_dataset(home)
    poems = list(iter_poems(home, "clean", split="train", labels=["trust"]))
    assert len(poems) == 70 and all(p.label == "trust" and p.split == "train" for p in poems)
