"""Training that learns nothing never replaces a model.

Data that the base's tokenizer turns into (almost) nothing is refused before any step, naming
the tokenizer; and a run whose best validation loss is not finite publishes nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.helpers.models import EOT, build_tiny_lora
from tests.helpers.training import tiny_config, write_dataset
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.training.events import EVENTS_FILE
from trainer.training.loop import train
from trainer.training.packing import MIN_TOKENS_PER_POEM
from trainer.training.publish import BEST_FILE


def new_job(home: DataHome, name: str) -> Path:
    job = home.jobs / name
    job.mkdir(parents=True)
    return job


def steps_of(job: Path) -> list[dict]:
    if not (job / EVENTS_FILE).is_file():
        return []
    records = map(json.loads, (job / EVENTS_FILE).read_text().splitlines())
    return [record for record in records if record["event"] == "step"]


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def build_blind_base(folder: Path) -> Path:
    """A tiny GPT-2 whose tokenizer knows only its marker: every word becomes the unknown token."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    blind = Tokenizer(WordLevel({EOT: 0}, unk_token=EOT))
    blind.pre_tokenizer = Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=blind, bos_token=EOT, eos_token=EOT, unk_token=EOT
    )
    tokenizer.save_pretrained(folder)
    config = GPT2Config(
        vocab_size=1, n_positions=64, n_embd=8, n_layer=1, n_head=1, bos_token_id=0, eos_token_id=0
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture
def data_home(home: DataHome) -> DataHome:
    write_dataset(home)
    return home


def test_a_tokenizer_that_turns_every_poem_into_nothing_is_refused_and_named(
    data_home: DataHome, tiny_base: Path, tmp_path: Path
) -> None:
    previous = build_tiny_lora(tiny_base, data_home.models / "trust", "trust")
    before = contents(previous)
    blind = build_blind_base(tmp_path / "blind-base")
    job = new_job(data_home, "blind")
    with pytest.raises(PoetstudioError) as caught:
        train(tiny_config(blind), data_home, job)
    message = str(caught.value)
    assert "\n" not in message
    assert f"the tokenizer of {blind}" in message
    assert "0.0 real tokens" in message and f"at least {MIN_TOKENS_PER_POEM}" in message
    assert steps_of(job) == [] and contents(previous) == before


def test_poems_of_a_token_or_two_are_refused_before_any_step(
    home: DataHome, tiny_base: Path
) -> None:
    folder = write_dataset(home)
    rows = [json.loads(line) for line in (folder / "poems.jsonl").read_text().splitlines()]
    for row in rows:
        row.update(text="O", words=1, lines=1)
    (folder / "poems.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    job = new_job(home, "tiny-poems")
    with pytest.raises(PoetstudioError, match=r"real tokens each on average") as caught:
        train(tiny_config(tiny_base), home, job)
    assert "trust poems of dataset 'clean'" in str(caught.value)
    assert steps_of(job) == [] and not (home.models / "trust").exists()


@pytest.mark.parametrize("loss", [math.nan, math.inf])
def test_a_run_whose_best_validation_loss_is_not_finite_publishes_nothing(
    data_home: DataHome, tiny_base: Path, monkeypatch: pytest.MonkeyPatch, loss: float
) -> None:
    previous = build_tiny_lora(tiny_base, data_home.models / "trust", "trust")
    before = contents(previous)
    monkeypatch.setattr("trainer.training.loop.validation_loss", lambda *_args: loss)
    job = new_job(data_home, "diverged")
    # A best-weights file from an earlier attempt in this job folder must not be published either.
    (job / BEST_FILE).write_bytes(b"stale")
    with pytest.raises(PoetstudioError, match="never became finite") as caught:
        train(tiny_config(tiny_base, max_steps=4, eval_every=2), data_home, job)
    assert "the previous model is intact" in str(caught.value)
    assert contents(previous) == before
    assert sorted(p.name for p in data_home.models.iterdir()) == ["trust"]


def test_ordinary_poems_still_train(data_home: DataHome, tiny_base: Path) -> None:
    job = new_job(data_home, "fine")
    result = train(tiny_config(tiny_base, max_steps=2, eval_every=2), data_home, job)
    assert result.status == "done" and math.isfinite(result.best_val_loss or math.nan)
    assert (data_home.models / "trust" / "poetstudio.json").is_file()
