"""The co-writing draft: saved after every accepted line, loadable after a crash, undo, rewrite,
and a poems-file record that keeps each line's provenance."""

from __future__ import annotations

import json
import os

import pytest

from studio.core.cowrite.draft import Draft, draft_path
from studio.core.poemfile import append_poem, read_poems
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome


def test_every_accepted_line_is_saved_and_reads_back(home: DataHome) -> None:
    draft = Draft.start(home, "joy", {"temperature": 0.8})
    assert Draft.open(home) is None, "nothing is saved before the first line"
    draft.add("The lamps are out", "typed", "joy")
    draft.add("along the quay", "chosen", "joy", of=3)
    draft.add("", "typed", "joy")
    draft.emotion = "sadness"
    draft.add("and the grey sea sighs", "edited", "sadness", of=5)
    back = Draft.open(home)  # as after a crash: only the file is left
    assert back is not None
    assert back.lines == draft.lines and back.settings == {"temperature": 0.8}
    assert back.emotion == "sadness"
    assert back.texts == ["The lamps are out", "along the quay", "", "and the grey sea sighs"]


def test_undo_takes_back_the_last_line_and_saves(home: DataHome) -> None:
    draft = Draft.start(home, "joy")
    draft.add("one", "typed", "joy")
    draft.add("", "typed", "joy")
    draft.add("two", "chosen", "joy", of=3)
    undone = draft.undo()
    assert undone is not None and undone.text == "two"
    reopened = Draft.open(home)
    assert reopened is not None and reopened.texts == ["one"]
    assert draft.undo() is not None and draft.undo() is None


def test_a_rewritten_line_takes_its_place(home: DataHome) -> None:
    draft = Draft.start(home, "joy")
    for text in ("one", "two", "three"):
        draft.add(text, "typed", "joy")
    draft.replace(2, "deux", "chosen", "trust", of=4)
    assert draft.texts == ["one", "deux", "three"]
    assert draft.lines[1].how == "chosen" and draft.lines[1].of == 4
    with pytest.raises(PoetstudioError, match="line 4 is not in the poem"):
        draft.replace(4, "x", "typed", "joy", None)


def test_the_saved_record_carries_the_provenance(home: DataHome) -> None:
    draft = Draft.start(home, "joy")
    draft.add("The lamps are out", "typed", "joy")
    draft.add("along the quay", "chosen", "joy", of=3)
    draft.add("and the sea", "finish", "joy")
    entry = draft.saved_poem(model="m", sampling={"temperature": 0.8}, seed=3, strength=1.0)
    path = append_poem(home.root / "poems.jsonl", entry)
    (poem,) = read_poems(path)
    assert poem.text == draft.text and poem.first_line == "The lamps are out"
    assert [p["how"] for p in poem.provenance] == ["typed", "chosen", "finish"]
    assert poem.provenance[1] == {"how": "chosen", "of": 3, "emotion": "joy"}
    draft.discard()
    assert not draft_path(home).exists()


def test_a_damaged_draft_is_a_one_line_error_naming_the_file(home: DataHome) -> None:
    path = draft_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": 1, "emotion": "joy", "lines": [{"text": 3}]}))
    with pytest.raises(PoetstudioError, match="draft.json") as caught:
        Draft.open(home)
    assert "\n" not in str(caught.value)


def test_a_failed_save_leaves_the_last_draft_whole(
    home: DataHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    draft = Draft.start(home, "joy")
    draft.add("one", "typed", "joy")

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        draft.add("two", "typed", "joy")
    monkeypatch.undo()
    back = Draft.open(home)
    assert back is not None and back.texts == ["one"]
