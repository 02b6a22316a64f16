"""The strength chart is a real PNG drawn from the sweep, beside the reports."""

from pathlib import Path

import pytest

from studio.core.evalplot import write_plot
from tests.helpers.evaldata import sweep
from trainer.evaluation.metrics import pick_strength


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
