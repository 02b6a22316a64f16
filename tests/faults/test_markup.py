"""Rich markup and :emoji: codes in paths, names and poems are shown literally, never interpreted:
a folder named `odd[/bold]` once crashed the loading spinner."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import models
from studio.cli import app, common
from studio.cli import corpus as corpus_cli
from studio.cli import write as write_cli
from studio.cli.progress import render
from tests.helpers.models import build_tiny_lora
from trainer.common.home import DataHome
from trainer.training.events import JobProgress

HOSTILE = "odd[/bold] [red]x:smile:"
runner = CliRunner()


def test_the_consoles_print_markup_and_emoji_codes_as_typed() -> None:
    for console in (common.console, common.err_console):
        with console.capture() as captured:
            console.print(f"poem {HOSTILE}")
        assert captured.get() == f"poem {HOSTILE}\n"


class _Poet:
    """Stands in for a Poet whose load reports a path holding markup."""

    def load(self, emotion: str, on_progress: object = None) -> None:
        assert callable(on_progress)
        on_progress(0.5, f"loading /models/{HOSTILE} weights")


def test_the_loading_spinner_shows_a_path_with_markup_literally() -> None:
    with common.err_console.capture() as captured:
        write_cli._load(_Poet(), "joy", tty=True)  # type: ignore[arg-type]
    assert "Traceback" not in captured.get()


def test_write_on_a_terminal_loads_a_base_in_a_folder_named_like_markup(
    home: DataHome, tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd_base = shutil.copytree(tiny_base, tmp_path / "odd[" / "bold]")
    monkeypatch.setattr(models, "BUNDLED_DIR", tmp_path / "no-bundled")
    monkeypatch.setattr(write_cli, "_stdout_is_tty", lambda: True)
    build_tiny_lora(odd_base, home.models / "joy", "joy")
    result = runner.invoke(app, ["write", "-e", "joy", "--max-tokens", "5", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert result.exception is None


def test_the_models_table_shows_a_home_path_with_markup(
    tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = DataHome(tmp_path / "h[/bold]ome").ensure()
    monkeypatch.setattr(models, "BUNDLED_DIR", tmp_path / "no-bundled")
    build_tiny_lora(tiny_base, home.models / "joy", "joy")
    result = runner.invoke(app, ["--home", str(home.root), "models"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert str(home.models / "joy") in result.output


def test_corpus_fetch_shows_a_source_path_with_markup(tmp_path: Path, home: DataHome) -> None:
    folder = tmp_path / "odd[" / "bold]"
    folder.mkdir(parents=True)
    source = folder / "poems.txt"
    source.write_text("The lamps are out along the quay,\nand the grey sea sighs.\n")
    result = runner.invoke(
        app, ["corpus", "fetch", "--source", str(source)], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    assert str(source) in result.output


def test_dataset_tables_show_names_and_labels_literally() -> None:
    row = {"poems": 3, "valid": 1, "mean_lines": 4.0, "mean_words": 20.0}
    manifest = {"name": "[red]odd", "poems": 3, "labels": {"[/bold]": row}}
    with common.console.capture() as captured:
        corpus_cli._print_label_table(manifest)
    shown = captured.get()
    assert "dataset [red]odd: 3 poems" in shown and "[/bold]" in shown


def test_the_training_display_shows_job_fields_literally() -> None:
    progress = JobProgress()
    progress.emotion = "joy"
    progress.base = HOSTILE
    progress.message = f"error in {HOSTILE}"
    with common.console.capture() as captured:
        common.console.print(render(progress, "20250101-000000-joy-abcd"))
    shown = captured.get()
    assert HOSTILE in shown and f"error in {HOSTILE}" in shown
