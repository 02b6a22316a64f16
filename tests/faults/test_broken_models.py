"""Models that silently don't work: refused at scan or load with the reason, never empty poems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import models
from studio.cli import app
from studio.core.loader import ModelLoader
from studio.core.registry import read_model, scan_models
from tests.helpers.models import build_tiny_base, build_tiny_full_model, build_tiny_lora
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)


def strip_tokenizer(folder: Path) -> Path:
    """Delete a model folder's tokenizer files, as a half-copied folder lacks them."""
    for name in TOKENIZER_FILES:
        (folder / name).unlink(missing_ok=True)
    return folder


@pytest.fixture
def no_bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the CLI at an empty bundled-models folder."""
    folder = tmp_path / "no-bundled"
    folder.mkdir()
    monkeypatch.setattr(models, "BUNDLED_DIR", folder)
    return folder


def test_a_full_model_without_tokenizer_files_is_reported_broken(
    home: DataHome, no_bundled: Path
) -> None:
    strip_tokenizer(build_tiny_full_model(home.models / "joy", "joy"))
    scan = scan_models(home, no_bundled)
    assert "joy" not in scan.models
    problem = scan.problems["joy"]
    assert "missing tokenizer.json or tokenizer.model or vocab.json" in problem
    assert str(home.models / "joy") in problem and "\n" not in problem


def test_write_refuses_a_full_model_without_tokenizer_and_saves_nothing(
    home: DataHome, no_bundled: Path
) -> None:
    strip_tokenizer(build_tiny_full_model(home.models / "joy", "joy"))
    out = home.root / "out.md"
    result = CliRunner().invoke(app, ["write", "-e", "joy", "--max-tokens", "10", "-o", str(out)])
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "tokenizer" in line and str(home.models / "joy") in line
    assert "Traceback" not in result.output and result.stdout == ""
    assert not out.exists()


def test_models_lists_a_full_model_without_tokenizer_as_broken(
    home: DataHome, no_bundled: Path
) -> None:
    strip_tokenizer(build_tiny_full_model(home.models / "joy", "joy"))
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "broken" in result.stdout and "missing tokenizer.json" in result.stdout


def test_the_loader_refuses_a_base_whose_tokenizer_files_are_missing(
    home: DataHome, tmp_path: Path
) -> None:
    # The registry cannot see into a LoRA's base; the loader checks what the tokenizer can do.
    base = strip_tokenizer(build_tiny_base(tmp_path / "base"))
    build_tiny_lora(base, home.models / "joy", "joy")
    info = read_model(home.models / "joy", "user", "joy")
    with pytest.raises(PoetstudioError) as caught:
        ModelLoader(home, device="cpu").load(info)
    message = str(caught.value)
    assert "tokenizer has 1 tokens" in message and "embedding rows" in message
    assert str(base) in message and "\n" not in message


def test_the_loader_refuses_a_tokenizer_that_turns_verse_into_unknown_tokens(
    home: DataHome,
) -> None:
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers import models as tk_models
    from transformers import PreTrainedTokenizerFast

    folder = build_tiny_full_model(home.models / "joy", "joy")
    rows = json.loads((folder / "config.json").read_text())["vocab_size"]
    # As many tokens as the model has rows, but none of them a word of English verse.
    vocab = {"<unk>": 0, **{f"zz{i}": i for i in range(1, rows)}}
    word_level = Tokenizer(tk_models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    strip_tokenizer(folder)
    PreTrainedTokenizerFast(
        tokenizer_object=word_level, unk_token="<unk>", eos_token="<unk>"
    ).save_pretrained(folder)
    info = read_model(folder, "user", "joy")
    with pytest.raises(PoetstudioError, match="into unknown tokens") as caught:
        ModelLoader(home, device="cpu").load(info)
    assert str(folder) in str(caught.value) and "\n" not in str(caught.value)


def test_a_healthy_full_model_still_loads(home: DataHome, no_bundled: Path) -> None:
    build_tiny_full_model(home.models / "joy", "joy")
    info = scan_models(home, no_bundled).models["joy"]
    loaded = ModelLoader(home, device="cpu").load(info)
    assert len(loaded.tokenizer) > 100


def nan_weights(folder: Path) -> Path:
    """Overwrite every weight of a full model folder with NaN, as a damaged save might."""
    import torch
    from safetensors.torch import load_file, save_file

    weights = folder / "model.safetensors"
    tensors = {name: torch.full_like(t, float("nan")) for name, t in load_file(weights).items()}
    save_file(tensors, str(weights), metadata={"format": "pt"})
    return folder


@pytest.mark.parametrize("temperature", ["0.8", "0"])
def test_a_model_with_nan_weights_is_a_one_line_error_naming_it_damaged(
    home: DataHome, no_bundled: Path, temperature: str
) -> None:
    nan_weights(build_tiny_full_model(home.models / "joy", "joy"))
    poems = home.root / "poems.md"
    result = CliRunner().invoke(
        app,
        ["write", "-e", "joy", "--temperature", temperature, "--seed", "1", "-o", str(poems)],
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: the model produced non-finite scores")
    assert "damaged" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not poems.exists(), "nothing is saved from a damaged model"
