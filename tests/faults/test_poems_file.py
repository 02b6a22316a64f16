"""Faults in the poems file: a disk that fills mid-append, hostile text, and empty poems.

An append lands whole or leaves the file byte for byte as it was; no text a user or a model
wrote can forge an entry; every entry reads back exactly (md, txt, jsonl, and the Saved tab);
and an empty poem is never saved, with the reason said instead.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from studio.cli import app as cli_app
from studio.cli import write as write_cli
from studio.core.poemfile import SavedPoem, append_poem, read_poems
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome

FORMATS = ("poems.md", "poems.txt", "poems.jsonl")
ZWJ_FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467"  # one emoji, joined by zero-width joiners
HOSTILE = {
    "newline and a heading": "The sea\n## fake entry\n- emotion: joy",
    "escape byte": "\x1b[31mred\x1b[0m and \x1b]0;title\x07",
    "rich markup": "[bold]loud[/bold] and [link=x]y[/link]",
    "quote": "> quoted",
    "rule": "---",
    "txt rule": "* * *",
    "very long": "long " * 4000,
    "zero-width joiners": f"my {ZWJ_FAMILY} at the shore",
    "placeholder": "(none)",
    "backslashes": "a \\n is not a newline, \\u001b not an escape, \\\\ two",
    "line separators": "one\u2028two\u2029three\x85four\rfive\x0bsix\x0cseven",
    "numbered list": "1. first",
    "markdown inline": "*stars* _under_ `code` <b>&amp; ~~gone~~ #tag",
}


def poem(
    text: str = "The lamps are out along the quay,\nand the grey sea sighs", **fields
) -> SavedPoem:
    values = {
        "text": text,
        "emotion": "sadness",
        "first_line": "The lamps are out",
        "model": "user:models/sadness",
        "settings": {"temperature": 0.8, "seed": 7},
    }
    values.update(fields)
    return SavedPoem(**values)  # type: ignore[arg-type]


class DiskFull:
    """os.write that lets `allowed` bytes through in all, then fails as a full disk does."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.real = os.write

    def __call__(self, fd: int, data: bytes) -> int:
        if self.allowed <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        written = self.real(fd, bytes(data[: self.allowed]))
        self.allowed -= written
        return written


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("allowed", [0, 1, 40])
def test_a_disk_that_fills_midway_leaves_the_poems_file_byte_for_byte_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, allowed: int
) -> None:
    path = tmp_path / name
    append_poem(path, poem())
    before = path.read_bytes()
    monkeypatch.setattr("trainer.common.atomic.os.write", DiskFull(allowed))
    with pytest.raises(PoetstudioError, match="No space left on device.*not lost") as caught:
        append_poem(path, poem("A second poem\nthat never lands"))
    assert "\n" not in str(caught.value)
    assert path.read_bytes() == before
    monkeypatch.undo()
    assert [p.text for p in read_poems(path)] == [poem().text]


def test_a_failing_fsync_also_undoes_the_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "poems.md"
    path.write_text("# My poems\n")
    before = path.read_bytes()
    real = os.fsync
    calls = {"n": 0}

    def failing(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 1:  # the append's own fsync; the one after the cut-back is let through
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr("trainer.common.atomic.os.fsync", failing)
    with pytest.raises(PoetstudioError, match="Input/output error"):
        append_poem(path, poem())
    assert path.read_bytes() == before


def test_short_writes_still_land_the_whole_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.write
    monkeypatch.setattr(
        "trainer.common.atomic.os.write", lambda fd, data: real(fd, bytes(data[:7]))
    )
    path = append_poem(tmp_path / "poems.md", poem())
    (back,) = read_poems(path)
    assert back == poem(created=back.created) and back.text == poem().text


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_first_line_cannot_forge_an_entry_and_reads_back_exactly(
    tmp_path: Path, name: str, case: str
) -> None:
    path = tmp_path / name
    hostile = HOSTILE[case]
    saved = [poem(), poem(first_line=hostile), poem("Joy comes laughing\nover the green hill")]
    for entry in saved:
        append_poem(path, entry)
    assert read_poems(path) == saved
    raw = path.read_text(encoding="utf-8")
    assert "\x1b" not in raw and "\u2028" not in raw and "\r" not in raw
    if name.endswith(".md"):
        assert sum(line.startswith("## ") for line in raw.split("\n")) == 3
        assert raw.count("\n- first line: ") == 3


@pytest.mark.parametrize("name", FORMATS)
def test_every_field_and_the_verse_itself_are_escaped(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    for case, hostile in sorted(HOSTILE.items()):
        append_poem(
            path,
            poem(
                f"{hostile}\n{case}\n\n  {hostile}",
                title=hostile.strip(),
                emotion=hostile,
                first_line=hostile,
                model=hostile,
                settings={"temperature": 0.8, "note": hostile.replace(", ", ";")},
            ),
        )
    back = read_poems(path)
    assert len(back) == len(HOSTILE)
    for entry, (case, hostile) in zip(back, sorted(HOSTILE.items()), strict=True):
        assert entry.text == f"{hostile}\n{case}\n\n  {hostile}"
        assert entry.title == hostile.strip()
        assert entry.emotion == entry.first_line == entry.model == hostile
    raw = path.read_text(encoding="utf-8")
    assert "\x1b" not in raw
    if name.endswith(".md"):
        assert sum(line.startswith("## ") for line in raw.split("\n")) == len(HOSTILE)
    if name.endswith(".txt"):
        assert raw.count("\n* * *\n") == len(HOSTILE)


def test_zero_width_joiners_survive_in_every_format(tmp_path: Path) -> None:
    for name in FORMATS:
        path = append_poem(tmp_path / name, poem(f"{ZWJ_FAMILY} by the sea", first_line=ZWJ_FAMILY))
        (back,) = read_poems(path)
        assert back.first_line == ZWJ_FAMILY and back.text.startswith(ZWJ_FAMILY)
        assert ZWJ_FAMILY in path.read_text(encoding="utf-8")  # kept as it is, not escaped


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("text", ["", "   ", "\n\n", " \n \t "])
def test_an_empty_poem_is_refused_with_the_reason(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    with pytest.raises(PoetstudioError, match="empty.*not saved") as caught:
        append_poem(path, poem(text))
    assert "\n" not in str(caught.value)
    assert not path.exists()


def test_an_entry_cut_short_by_a_crash_is_no_phantom_poem(tmp_path: Path) -> None:
    path = tmp_path / "poems.md"
    append_poem(path, poem())
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("## Half written\n\n- emotion: joy\n- first line: (none)\n")  # then a crash
    append_poem(path, poem("After the crash\na whole poem"))
    assert [p.text for p in read_poems(path)] == [poem().text, "After the crash\na whole poem"]


async def test_the_saved_tab_shows_each_entry_as_saved_and_no_forged_one(tmp_path: Path) -> None:
    from textual.app import App, ComposeResult

    from studio.tui.widgets.saved_poems import SavedPoemsView

    path = tmp_path / "poems.md"
    append_poem(path, poem(first_line=HOSTILE["newline and a heading"]))
    append_poem(path, poem(first_line=HOSTILE["rich markup"], text=f"{ZWJ_FAMILY}\n\\# kept"))

    class Viewer(App[None]):
        def compose(self) -> ComposeResult:
            yield SavedPoemsView()

    viewer = Viewer()
    async with viewer.run_test() as pilot:
        viewer.query_one(SavedPoemsView).load(path)
        await pilot.pause()
        shown = str(viewer.query_one("#saved-body").render())
    lines = shown.split("\n")
    assert sum(line.startswith("## ") for line in lines) == 2
    # The newline inside the first line shows as a symbol, on the detail's own line.
    assert "- first line: The sea\u2424## fake entry\u2424- emotion: joy" in lines
    # Markup and escapes are shown as the user typed them, not as escaped on disk.
    assert f"- first line: {HOSTILE['rich markup']}" in lines
    assert f"> {ZWJ_FAMILY}  " in lines and "> \\# kept  " in lines


def test_write_out_says_why_an_empty_poem_is_not_saved(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = write_cli._one_poem
    # The model runs as usual, but writes nothing (as a model without its tokenizer did).
    monkeypatch.setattr(write_cli, "_one_poem", lambda *args, **kwargs: real(*args, **kwargs)[:0])
    out = tmp_path / "mine.md"
    quick = ["--max-lines", "4", "--max-tokens", "20", "--seed", "3"]
    result = runner.invoke(cli_app, ["write", "-e", "joy", "-n", "2", "-o", str(out), *quick])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    (line,) = [row for row in result.stderr.splitlines() if row.startswith("error: ")]
    assert "2 of the 2 poems came out empty" in line and str(out) in line
    assert not out.exists()


async def test_the_studio_says_why_it_does_not_save_an_empty_poem(
    home: DataHome, tmp_path: Path
) -> None:
    from studio.core.history import SessionPoem
    from studio.tui.app import PoetStudioApp

    bundled = tmp_path / "no-bundled-models"
    bundled.mkdir()
    studio = PoetStudioApp(home, bundled_dir=bundled, seed=7)
    async with studio.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        studio.history.add(
            SessionPoem(
                emotion="joy", first_line="", seed=7, sampling={}, text=" \n", finished=True
            )
        )
        studio.action_save()
        await pilot.pause()
        notes = [n.message for n in studio._notifications]
    assert any("empty" in note and "Not saved" in note for note in notes)
    assert not home.poems_file.exists()
