"""`poetstudio eval` samples real (tiny) models and writes honest reports."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from studio.cli import app
from tests.conftest import build_tiny_lora
from tests.train_fixtures import write_dataset
from trainer.home import DataHome

runner = CliRunner()


def test_eval_reports_models_and_control(
    home: DataHome, tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dataset(home, counts={"neutral": 40, "joy": 40})
    build_tiny_lora(tiny_base, home.models / "neutral", "neutral", seed=1)
    build_tiny_lora(tiny_base, home.models / "joy", "joy", seed=2)
    monkeypatch.setattr("models.BUNDLED_DIR", tmp_path / "no-bundled-models")
    result = runner.invoke(app, ["eval", "-n", "3", "--device", "cpu", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    reports = sorted(tmp_path.glob("eval-*.json"))
    assert len(reports) == 1
    data = json.loads(reports[0].read_text())
    names = [r["name"] for r in data["results"]]
    assert names[:2] == ["neutral (user)", "joy (user)"]
    assert names.count("base (control)") == 2
    for row in data["results"]:
        assert row["n"] == 3
        assert row["val_ppl"] > 1
        assert 0 <= row["fidelity"] <= 1
    assert set(data["neutral_ppl_on_split"]) == {"joy"}
    markdown = reports[0].with_suffix(".md").read_text()
    assert "| joy (user) | joy | 3 |" in markdown
    assert "## Fidelity per model" in markdown


def test_eval_without_models_says_how_to_get_them(
    home: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("models.BUNDLED_DIR", tmp_path / "no-bundled-models")
    result = runner.invoke(app, ["eval", "--quick", "--emotion", "joy", "--device", "cpu"])
    assert result.exit_code == 1
    assert "no emotion models found" in result.output


def test_eval_refuses_unknown_emotion(home: DataHome) -> None:
    result = runner.invoke(app, ["eval", "--emotion", "glee"])
    assert result.exit_code == 1
    assert "unknown emotion" in result.output
