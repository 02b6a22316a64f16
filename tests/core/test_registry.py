"""The model registry: user models win, broken folders are reported, and errors say what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.core.registry import (
    resolve_model,
    scan_models,
    train_hint,
    untrained,
)
from tests.helpers.models import build_tiny_lora
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome


@pytest.fixture
def bundled(tmp_path: Path) -> Path:
    """An empty bundled-models folder, so the repository's own models never leak into a test."""
    folder = tmp_path / "bundled"
    folder.mkdir()
    return folder


def test_user_models_win_over_bundled(tiny_base: Path, home: DataHome, bundled: Path) -> None:
    build_tiny_lora(tiny_base, bundled / "joy", "joy")
    build_tiny_lora(tiny_base, bundled / "fear", "fear")
    build_tiny_lora(tiny_base, home.models / "joy", "joy")
    models = scan_models(home, bundled).models
    assert set(models) == {"joy", "fear"}
    assert models["joy"].source == "user"
    assert models["joy"].path == home.models / "joy"
    assert models["fear"].source == "bundled"
    assert models["joy"].method == "lora"
    assert models["joy"].base_spec == str(tiny_base)
    assert models["joy"].manifest["metrics"]["best_val_ppl"] == 148.4


def test_no_models_at_all_explains_bundled_and_training(home: DataHome, bundled: Path) -> None:
    with pytest.raises(PoetstudioError) as caught:
        resolve_model("joy", home, bundled)
    message = str(caught.value)
    assert "bundled" in message and "poetstudio train" in message
    assert "\n" not in message


def test_untrained_emotion_names_its_train_command(
    tiny_base: Path, home: DataHome, bundled: Path
) -> None:
    build_tiny_lora(tiny_base, home.models / "joy", "joy")
    with pytest.raises(PoetstudioError, match="poetstudio train --emotion anger"):
        resolve_model("anger", home, bundled)
    missing = untrained(scan_models(home, bundled))
    assert "joy" not in missing
    assert missing["trust"] == train_hint("trust") == "poetstudio train --emotion trust"
    assert len(missing) == 8


@pytest.mark.parametrize("name", ["joyful", "../joy", "models/joy"])
def test_unknown_or_path_like_emotion_is_refused(name: str, home: DataHome, bundled: Path) -> None:
    with pytest.raises(PoetstudioError, match="unknown emotion|path-like"):
        resolve_model(name, home, bundled)


def test_emotion_names_are_normalised(tiny_base: Path, home: DataHome, bundled: Path) -> None:
    build_tiny_lora(tiny_base, home.models / "joy", "joy")
    assert resolve_model(" Joy ", home, bundled).emotion == "joy"


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda folder: (folder / "poetstudio.json").write_text("{not json"), "corrupt manifest"),
        (lambda folder: (folder / "poetstudio.json").unlink(), "has no poetstudio.json"),
        (lambda folder: (folder / "poetstudio.json").write_text("[1, 2]"), "not a JSON object"),
        (
            lambda folder: (folder / "poetstudio.json").write_text(json.dumps({"method": "magic"})),
            "method is 'magic', not one of: lora, full",
        ),
        (lambda folder: (folder / "adapter_config.json").unlink(), "missing adapter_config.json"),
    ],
)
def test_one_broken_model_leaves_the_others_usable(
    damage, expected: str, tiny_base: Path, home: DataHome, bundled: Path
) -> None:
    build_tiny_lora(tiny_base, home.models / "joy", "joy")
    build_tiny_lora(tiny_base, home.models / "sadness", "sadness")
    damage(home.models / "sadness")
    scan = scan_models(home, bundled)
    assert set(scan.models) == {"joy"}
    assert expected in scan.problems["sadness"]
    assert "\n" not in scan.problems["sadness"]
    with pytest.raises(PoetstudioError, match=expected) as caught:
        resolve_model("sadness", home, bundled, scan=scan)
    assert "poetstudio train --emotion sadness" in str(caught.value)
    assert resolve_model("joy", home, bundled, scan=scan).emotion == "joy"


def test_a_broken_user_model_hides_the_bundled_one_and_says_so(
    tiny_base: Path, home: DataHome, bundled: Path
) -> None:
    build_tiny_lora(tiny_base, bundled / "joy", "joy")
    (home.models / "joy").mkdir()
    (home.models / "joy" / "poetstudio.json").write_text("\x00\x01garbage")
    scan = scan_models(home, bundled)
    assert "joy" not in scan.models
    assert "corrupt manifest" in scan.problems["joy"]
    assert "hides the bundled joy model" in scan.problems["joy"]
    with pytest.raises(PoetstudioError, match=f"or delete {home.models / 'joy'}"):
        resolve_model("joy", home, bundled, scan=scan)


def test_training_leftovers_are_ignored_and_finished_models_appear_on_rescan(
    tiny_base: Path, home: DataHome, bundled: Path
) -> None:
    # A training job writes its model beside the final folder, then moves it into place.
    staged = home.models / ".trust.staging"
    build_tiny_lora(tiny_base, staged, "trust")
    (home.jobs / "20250101-trust").mkdir()
    assert scan_models(home, bundled).models == {}
    staged.rename(home.models / "trust")
    assert list(scan_models(home, bundled).models) == ["trust"]


def test_the_typed_manifest_reads_the_fields_and_keeps_unknown_keys(
    tiny_base: Path, home: DataHome, bundled: Path
) -> None:
    folder = build_tiny_lora(tiny_base, home.models / "joy", "joy")
    record = json.loads((folder / "poetstudio.json").read_text())
    record["from_a_newer_version"] = {"anything": 1}
    (folder / "poetstudio.json").write_text(json.dumps(record))
    manifest = resolve_model("joy", home, bundled).manifest
    assert (manifest.method, manifest.base_spec) == ("lora", str(tiny_base))
    assert manifest.best_val_ppl == 148.4
    assert manifest["from_a_newer_version"] == {"anything": 1}


def test_models_command_and_studio_agree_on_a_user_folder_without_weights(
    tiny_base: Path, home: DataHome, bundled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from studio.cli import app

    monkeypatch.setattr("models.BUNDLED_DIR", bundled)
    build_tiny_lora(tiny_base, bundled / "joy", "joy")
    build_tiny_lora(tiny_base, home.models / "joy", "joy")
    (home.models / "joy" / "adapter_model.safetensors").unlink()  # a manifest, no weights
    with pytest.raises(PoetstudioError, match="user model 'joy' is missing") as caught:
        resolve_model("joy", home, bundled)
    assert "hides the bundled joy model" in str(caught.value)
    output = CliRunner().invoke(app, ["models"]).output
    rows = [line.split() for line in output.splitlines() if line.strip().startswith("joy ")]
    # The studio's choice, the user's folder, is the broken row; the bundled one is not used.
    assert rows[0][1:3] == ["user", "broken"]
    assert rows[1][1:5] == ["bundled", "(hidden", "by", "user)"]
    assert "broken: user model 'joy' is missing adapter_model.safetensors" in output
