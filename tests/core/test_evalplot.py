"""The strength and fidelity charts are real PNGs drawn from the runs, beside the reports."""

import dataclasses
from pathlib import Path

import pytest

from studio.core.evalplot import write_fidelity_plot, write_plot
from studio.core.evalrun import BASE_NAME, EvalReport, write_reports
from tests.helpers.evaldata import sweep
from trainer.evaluation.metrics import ModelEval, pick_strength


def test_strength_chart_is_written_as_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rows = sweep({0.0: {}, 1.0: {"judge_fidelity": 0.5}, 2.0: {"judge_fidelity": None}})
    path = write_plot(rows, pick_strength(rows), tmp_path / "eval-x.png")
    assert path == tmp_path / "eval-x.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_strength_chart_needs_a_sweep(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rows = sweep({1.0: {}})
    for row in rows:
        row.strength = None
    assert write_plot(rows, pick_strength(rows), tmp_path / "eval-x.png") is None
    assert not (tmp_path / "eval-x.png").exists()


def _with_base_control(rows: list[ModelEval]) -> list[ModelEval]:
    """`rows` and a base control row for each emotion, at a lower fidelity."""
    base = [
        dataclasses.replace(row, name=BASE_NAME, strength=None, fidelity=0.1, judge_fidelity=0.05)
        for row in rows
        if row.strength == 0.0
    ]
    return [*rows, *base]


def test_fidelity_chart_is_written_as_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rows = _with_base_control(sweep({0.0: {}, 1.0: {"fidelity": 0.9, "judge_fidelity": 0.7}}))
    path = write_fidelity_plot(rows, 1.0, BASE_NAME, tmp_path / "eval-x-fidelity.png")
    assert path == tmp_path / "eval-x-fidelity.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_fidelity_chart_draws_a_single_unswept_run_without_a_judge(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rows = sweep({1.0: {"judge_fidelity": None}})
    for row in rows:
        row.strength = None
    path = write_fidelity_plot(rows, None, BASE_NAME, tmp_path / "chart.png")
    assert path is not None and path.stat().st_size > 0


def test_fidelity_chart_needs_a_model_row(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rows = [dataclasses.replace(r, name=BASE_NAME) for r in sweep({0.0: {}})]
    assert write_fidelity_plot(rows, None, BASE_NAME, tmp_path / "chart.png") is None
    assert not (tmp_path / "chart.png").exists()


def test_the_markdown_report_links_the_fidelity_chart_beside_it(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rows = _with_base_control(sweep({0.0: {}, 1.0: {}}))
    report = EvalReport(rows, pick_strength(rows))
    paths = write_reports(report, tmp_path / "eval-1", "poetstudio eval")
    assert paths.fidelity_plot is not None and paths.fidelity_plot.parent == tmp_path / "eval-1"
    assert paths.fidelity_plot.stat().st_size > 0
    assert f"]({paths.fidelity_plot.name})" in paths.markdown.read_text()
