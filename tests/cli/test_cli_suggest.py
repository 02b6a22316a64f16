"""`poetstudio suggest`: candidate lines from a file or stdin, the JSON shape, --rewrite, and a
one-line error for every bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from studio.cli import app
from trainer.evaluation import judge as judge_module

POEM = "The lamps are out along the quay\nand the grey sea sighs beneath the stars\n\nO weep\n"
QUICK = ["--seed", "5", "--max-tokens", "30"]


def suggest(runner: CliRunner, *args: str, stdin: str | bytes | None = POEM) -> Any:
    return runner.invoke(app, ["suggest", "-e", "joy", *QUICK, *args], input=stdin)


@pytest.fixture(autouse=True)
def no_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never load the real judge (slow): by default it is missing."""
    monkeypatch.setattr(judge_module, "load_judge", lambda device="cpu": None)


def test_plain_output_is_one_candidate_a_line(runner: CliRunner) -> None:
    result = suggest(runner, "-n", "4")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and all("\n" not in line for line in lines)
    again = suggest(runner, "-n", "4")
    assert again.stdout == result.stdout, "the same seed, the same candidates"


def test_a_file_reads_as_stdin_does(runner: CliRunner, tmp_path: Path) -> None:
    poem = tmp_path / "poem.txt"
    poem.write_text(POEM)
    from_file = suggest(runner, str(poem), stdin=None)
    assert from_file.exit_code == 0, from_file.output
    assert from_file.stdout == suggest(runner).stdout


def test_json_gives_each_candidate_its_scores(runner: CliRunner) -> None:
    result = suggest(runner, "--json", "-n", "2", "--use", "grave")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["emotion"] == "joy" and document["line"] == 4
    assert document["rewrite"] is False
    assert len(document["candidates"]) == 2
    for candidate in document["candidates"]:
        assert set(candidate) == {"text", "seed", "ended", "scores"}
        scores = candidate["scores"]
        assert set(scores) == {
            "logprob",
            "logprob_per_token",
            "emolex",
            "judge",
            "syllables",
            "rhyme",
            "follow_logprob",
        }
        assert scores["logprob"] < 0 and isinstance(scores["syllables"], int)
        assert scores["judge"] is None and scores["follow_logprob"] is None
        assert "grave" in candidate["text"].lower()
    assert "no semantic judge" in result.stderr
    assert any("no semantic judge" in n for n in document["notices"])


def test_json_carries_the_judges_score_when_it_is_installed(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    class FakeJudge:
        def scores(self, texts: list[str]) -> torch.Tensor:
            return torch.full((len(texts), 8), 0.5)

    monkeypatch.setattr(judge_module, "load_judge", lambda device="cpu": FakeJudge())
    result = suggest(runner, "--json", "-n", "2")
    assert result.exit_code == 0, result.output
    scores = [c["scores"]["judge"] for c in json.loads(result.stdout)["candidates"]]
    assert scores == [0.5, 0.5] and "no semantic judge" not in result.stderr


def test_rewrite_ranks_candidates_for_a_middle_line(runner: CliRunner) -> None:
    result = suggest(runner, "--json", "--rewrite", "2", "-n", "3")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["line"] == 2 and document["rewrite"] is True
    follows = [c["scores"]["follow_logprob"] for c in document["candidates"]]
    assert all(f is not None for f in follows) and follows == sorted(follows, reverse=True)


@pytest.mark.parametrize(
    ("args", "stdin", "message", "code"),
    [
        (["-n", "0"], POEM, "-n must be 1 to 8, not 0", 2),
        (["-n", "9"], POEM, "-n must be 1 to 8, not 9", 2),
        (["--rewrite", "0"], POEM, "--rewrite: line 0 is not in the poem: it has lines 1 to 3", 2),
        (["--rewrite", "4"], POEM, "--rewrite: line 4 is not in the poem: it has lines 1 to 3", 2),
        (["--use", ""], POEM, "--use needs a word; it was empty", 2),
        (["--use", "two words"], POEM, "--use takes one word, not 2", 2),
        (["--rhyme-with", "42"], POEM, "--rhyme-with needs a word with letters", 2),
        (["--topic", "a b c"], POEM, "--topic takes one word, not 3", 2),
        ([], "", "stdin holds no poem: give at least one line", 1),
        ([], " \n\n", "stdin holds no poem: give at least one line", 1),
        ([], b"\x00\x01binary", "stdin is binary, not a poem", 1),
        ([], b"\xff\xfe\xfa", "stdin is not UTF-8 text", 1),
    ],
)
def test_each_bad_input_is_a_one_line_error(
    runner: CliRunner, args: list[str], stdin: str | bytes, message: str, code: int
) -> None:
    result = suggest(runner, *args, stdin=stdin)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_a_missing_file_is_a_one_line_error(runner: CliRunner, tmp_path: Path) -> None:
    result = suggest(runner, str(tmp_path / "absent.txt"), stdin=None)
    assert result.exit_code == 1 and "absent.txt" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_poem_over_the_context_says_how_much_is_kept(runner: CliRunner) -> None:
    poem = "".join(f"the grey sea sighs beneath the stars {i}\n" for i in range(60))
    result = suggest(runner, "-n", "1", stdin=poem)
    assert result.exit_code == 0, result.output
    assert "the candidates read its last" in result.stderr and "of 60 lines" in result.stderr


def test_a_rhyme_word_outside_the_dictionary_is_noticed(runner: CliRunner) -> None:
    result = suggest(runner, "-n", "1", "--rhyme-with", "qzzax")
    assert result.exit_code == 0, result.output
    assert "'qzzax' is not in the CMU dictionary; rhyming by spelling" in result.stderr
