"""Saving poems: every format round-trips, appends never truncate, and failures lose nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from studio.core.generation.settings import SamplingParams
from studio.core.poemfile import (
    RECORD_VERSION,
    SavedPoem,
    append_poem,
    format_for,
    read_poems,
    render,
)
from trainer.common.errors import PoetstudioError

TEXT = "\n".join(
    [
        "The lamps are out along the quay,",
        "# and the grey sea sighs",
        "",
        "[bold red]x[/] beneath the stars.",
    ]
)


def make_poem(**overrides: object) -> SavedPoem:
    fields = {
        "text": TEXT,
        "emotion": "sadness",
        "first_line": "The lamps are out along the quay,",
        "model": "user:/home/models/sadness",
        "settings": {"temperature": 0.8, "top_p": 0.95, "seed": 7},
    }
    fields.update(overrides)
    return SavedPoem(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["poems.md", "poems.txt", "poems.jsonl", "poems.markdown", "poems"]
)
def test_each_format_round_trips(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    first, second = (
        make_poem(),
        make_poem(text="Joy comes laughing\nover the green hill", emotion="joy"),
    )
    append_poem(path, first)
    append_poem(path, second)
    poems = read_poems(path)
    assert [p.text for p in poems] == [first.text, second.text]
    assert [p.emotion for p in poems] == ["sadness", "joy"]
    assert poems[0].title == first.title and poems[0].created == first.created
    assert poems[0].first_line == first.first_line
    assert poems[0].model == first.model
    assert poems[0].settings == first.settings


def test_markdown_entry_layout(tmp_path: Path) -> None:
    path = append_poem(tmp_path / "poems.md", make_poem())
    text = path.read_text()
    assert text.startswith(f"## {make_poem().title}\n")
    for detail in ("- emotion: sadness", "- first line: The lamps", "- model: user:", "- date: "):
        assert detail in text
    assert "- settings: temperature 0.8, top p 0.95, seed 7" in text
    # Verse keeps its line breaks, and a line that would start a heading is escaped.
    assert "> The lamps are out along the quay,  \n" in text
    assert "> \\# and the grey sea sighs  \n" in text
    assert "> [bold red]x[/] beneath the stars.  \n" in text


def test_jsonl_entry_is_one_json_object(tmp_path: Path) -> None:
    path = append_poem(tmp_path / "poems.jsonl", make_poem())
    (line,) = path.read_text().splitlines()
    data = json.loads(line)
    assert data["text"] == TEXT and data["settings"]["seed"] == 7


def test_appends_keep_existing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "poems.md"
    path.write_text("# My poems\n\nhand-written notes\n")
    before = path.read_bytes()
    append_poem(path, make_poem())
    assert path.read_bytes().startswith(before)


def test_a_cut_short_last_line_does_not_swallow_the_next_entry(tmp_path: Path) -> None:
    path = tmp_path / "poems.jsonl"
    append_poem(path, make_poem(text="first poem"))
    with open(path, "a") as handle:
        handle.write('{"text": "half-writ')  # a crash in the middle of someone else's write
    append_poem(path, make_poem(text="second poem"))
    assert [p.text for p in read_poems(path)] == ["first poem", "second poem"]


def test_an_unwritable_poems_file_raises_and_the_poem_is_kept(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    poem = make_poem()
    with pytest.raises(PoetstudioError, match="could not save the poem.*not lost") as caught:
        append_poem(blocker / "poems.md", poem)
    assert "\n" not in str(caught.value)
    assert poem.text == TEXT
    with pytest.raises(PoetstudioError, match="could not save"):
        append_poem(tmp_path, poem, fmt="md")  # a directory


def test_format_choice(tmp_path: Path) -> None:
    assert format_for(Path("a.MD")) == "md"
    assert format_for(Path("a.ndjson")) == "jsonl"
    assert format_for(Path("a.poems")) == "txt"
    assert format_for(Path("a.md"), "jsonl") == "jsonl"
    with pytest.raises(PoetstudioError, match="unknown poem format"):
        format_for(Path("a.md"), "html")
    path = append_poem(tmp_path / "poems.md", make_poem(), fmt="jsonl")
    assert json.loads(path.read_text())["emotion"] == "sadness"


def test_reading_a_missing_file_gives_no_poems(tmp_path: Path) -> None:
    assert read_poems(tmp_path / "none.md") == []


def test_txt_entry_has_title_poem_and_details() -> None:
    text = render(make_poem(title="Grey Sea"), "txt")
    assert text.startswith("Grey Sea\n========\n\nThe lamps are out")
    assert "emotion: sadness\n" in text and text.endswith("* * *\n\n")


BLEND = "joy=0.70+sadness=0.30"


@pytest.mark.parametrize("name", ["poems.md", "poems.txt", "poems.jsonl"])
def test_a_blend_and_its_strengths_round_trip_in_every_format(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    settings = {**SamplingParams(strength=1.5).to_dict(), "seed": 7, "strength_applied": 0.0}
    blended = make_poem(emotion=BLEND, settings=settings)
    append_poem(path, blended)
    append_poem(path, make_poem(text="Joy comes laughing\nover the green hill", emotion="joy"))
    first, second = read_poems(path)
    assert first.emotion == BLEND and first.settings == settings
    assert first.text == TEXT and first.title == blended.title
    assert second.emotion == "joy" and second.text.startswith("Joy comes")


def test_markdown_keeps_a_blend_spec_and_the_strengths_as_plain_details(tmp_path: Path) -> None:
    settings = {"temperature": 0.8, "strength": 1.5, "seed": 7, "strength_applied": 0.0}
    path = append_poem(tmp_path / "poems.md", make_poem(emotion=BLEND, settings=settings))
    text = path.read_text()
    assert f"\n- emotion: {BLEND}\n" in text
    assert "- settings: temperature 0.8, strength 1.5, seed 7, strength applied 0.0\n" in text


@pytest.mark.parametrize("name", ["poems.md", "poems.txt", "poems.jsonl"])
def test_a_record_keeps_its_version_and_runtime_in_every_format(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    append_poem(path, make_poem(runtime="torch fp32 on AMD EPYC 7B13"))
    (poem,) = read_poems(path)
    assert poem.version == RECORD_VERSION == 3 and poem.runtime == "torch fp32 on AMD EPYC 7B13"


OLD_RECORDS = {
    "poems.md": "## Grey Sea\n\n- emotion: joy\n- first line: \n- model: m\n"
    "- settings: temperature 0.8, seed 7\n- date: 2026-01-01T00:00:00+00:00\n\n> a line  \n",
    "poems.txt": "Grey Sea\n========\n\na line\n\nemotion: joy\nfirst line: \nmodel: m\n"
    "settings: temperature 0.8, seed 7\ndate: 2026-01-01T00:00:00+00:00\n\n* * *\n",
    "poems.jsonl": json.dumps(
        {"text": "a line", "emotion": "joy", "settings": {"seed": 7}, "title": "Grey Sea"}
    )
    + "\n",
}


@pytest.mark.parametrize("name", sorted(OLD_RECORDS))
def test_a_record_without_a_version_reads_as_version_1(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(OLD_RECORDS[name])
    (poem,) = read_poems(path)
    assert (poem.text, poem.emotion, poem.settings["seed"]) == ("a line", "joy", 7)
    assert poem.version == 1 and poem.runtime == ""


PROVENANCE = [
    {"how": "typed", "of": None, "emotion": "joy"},
    {"how": "chosen", "of": 3, "emotion": "joy"},
    {"how": "edited", "of": 8, "emotion": BLEND},
    {"how": "finish", "of": None, "emotion": "sadness"},
]
FOUR_LINES = "The lamps are out\nalong the quay\n\nand the grey sea\nsighs"


@pytest.mark.parametrize("name", ["poems.md", "poems.jsonl"])
def test_a_co_written_poem_keeps_each_lines_provenance(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    append_poem(path, replace(make_poem(text=FOUR_LINES), provenance=PROVENANCE))
    (poem,) = read_poems(path)
    assert poem.provenance == PROVENANCE and poem.text == FOUR_LINES


def test_markdown_shows_provenance_as_one_detail_and_txt_leaves_it_out(tmp_path: Path) -> None:
    poem = replace(make_poem(text=FOUR_LINES), provenance=PROVENANCE)
    md = append_poem(tmp_path / "poems.md", poem).read_text()
    assert f"- lines: typed joy; chosen of 3 joy; edited of 8 {BLEND}; finish sadness\n" in md
    txt = append_poem(tmp_path / "poems.txt", poem).read_text()
    assert "typed" not in txt and "chosen" not in txt
    (back,) = read_poems(tmp_path / "poems.txt")
    assert back.text == FOUR_LINES and back.provenance == []


def test_damaged_provenance_is_dropped_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "poems.jsonl"
    row = {"text": "a line", "emotion": "joy", "version": 3, "provenance": [{"how": "stolen"}]}
    path.write_text(json.dumps(row) + "\n")
    (poem,) = read_poems(path)
    assert poem.provenance == [] and poem.text == "a line"
