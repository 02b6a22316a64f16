"""`poetstudio suggest`: candidate lines for a poem's next line (or to rewrite one of its lines),
read from a file or stdin, for editors and scripts (studio/core/cowrite/ does the writing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from studio.cli.common import bundled_dir, err_console, fail, handle_errors, home
from studio.cli.sampling_options import DeviceOption, PrecisionOption, with_sampling_options
from studio.core.generation import settings
from trainer.common.errors import PoetstudioError

MAX_K = 8  # studio/core/cowrite/writer.py's MAX_CANDIDATES (kept literal: --help imports no core)


def register(app: typer.Typer) -> None:
    """Add this module's command to the root app."""
    app.command(name="suggest")(handle_errors(with_sampling_options(suggest)))


def suggest(
    emotion: Annotated[
        str,
        typer.Option(
            "--emotion", "-e", help="One of the 8 emotions or neutral, or a blend (joy+sadness)."
        ),
    ],
    poem: Annotated[
        Path | None,
        typer.Argument(
            help="The poem so far, a UTF-8 text file (default: read stdin).", show_default=False
        ),
    ] = None,
    count: Annotated[
        int, typer.Option("--count", "-n", help=f"How many candidate lines (1 to {MAX_K}).")
    ] = 3,
    use: Annotated[
        str | None, typer.Option("--use", help="A word each candidate must use.")
    ] = None,
    rhyme_with: Annotated[
        str | None,
        typer.Option("--rhyme-with", help="A word each candidate's last word must rhyme with."),
    ] = None,
    topic: Annotated[
        str | None, typer.Option("--topic", help="A word the candidates are pulled toward.")
    ] = None,
    rewrite: Annotated[
        int | None,
        typer.Option(
            "--rewrite",
            help="Rewrite line N (1-based, blank lines not counted) instead of writing the next "
            "one; candidates are ranked by how well the lines after it follow.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON document with each candidate's scores.")
    ] = False,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
    **sampling: Any,
) -> None:
    """Suggest candidate lines for a poem's next line, one a line (or JSON with --json)."""
    from studio.core.blend import parse_blend
    from studio.core.cowrite.poemtext import decode_poem
    from studio.core.cowrite.words import check_word, rhyme_notice
    from studio.core.cowrite.writer import CoWriter, check_count
    from studio.core.generation.poet import Poet
    from studio.core.generation.steer import Steer
    from trainer.common.precision import check_precision

    name = parse_blend(emotion).spec
    params = settings.make_params(sampling)
    try:
        check_count(count)
        steer = Steer(
            use=check_word("--use", use),
            rhyme_with=check_word("--rhyme-with", rhyme_with),
            topic=check_word("--topic", topic),
        )
    except PoetstudioError as exc:
        raise fail(str(exc).replace("candidates must", "-n must"), code=2) from None
    lines = decode_poem(_read_poem(poem), str(poem) if poem is not None else "stdin")
    poet = Poet(
        home(),
        device=device,
        bundled_dir=bundled_dir(),
        precision=check_precision(precision.strip().lower()),
    )
    poet.model_info(name)  # fail before any loading if a part of the blend has no usable model
    writer = CoWriter(poet, name, params, lines)
    notices: list[str] = []
    if steer.rhyme_with is not None:
        notices.extend(filter(None, [rhyme_notice(steer.rhyme_with)]))
    if rewrite is not None:
        try:
            writer.line_index(rewrite)
        except PoetstudioError as exc:
            raise fail(f"--rewrite: {exc}", code=2) from None
        for _ in writer.rewrite(rewrite, count, steer):
            pass
        number = rewrite
    else:
        writer.write(count, steer)
        number = sum(1 for line in lines if line) + 1
    notices.extend(writer.notices)
    judged: list[float | None] = [None] * len(writer.candidates)
    if as_json:
        judged, notice = _judge(poet.device, writer, name)
        notices.extend(filter(None, [notice]))
    for notice in notices:
        err_console.print(f"note: {notice}", markup=False, soft_wrap=True, style="yellow")
    if as_json:
        from studio.core.cowrite.scores import candidate_record

        document = {
            "emotion": name,
            "line": number,
            "rewrite": rewrite is not None,
            "candidates": [
                candidate_record(c, name, j) for c, j in zip(writer.candidates, judged, strict=True)
            ],
            "notices": notices,
        }
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write("".join(c.text + "\n" for c in writer.candidates))
    sys.stdout.flush()


def _read_poem(path: Path | None) -> bytes:
    """The poem's bytes from `path`, or from stdin when it is piped."""
    if path is not None:
        if path.is_dir():
            raise PoetstudioError(f"{path} is a folder, not a poem file")
        return path.read_bytes()
    if sys.stdin.isatty():
        raise PoetstudioError("give the poem as a file, or pipe it on stdin")
    return sys.stdin.buffer.read()


def _judge(device: str, writer: Any, emotion: str) -> tuple[list[float | None], str | None]:
    """The semantic judge's score of each candidate, or Nones and why there are none."""
    from studio.core.cowrite.scores import judge_scores
    from trainer.evaluation.judge import INSTALL_HINT, load_judge

    texts = [c.text for c in writer.candidates]
    judge = load_judge(device)
    if judge is None:
        note = f"no semantic judge: `{INSTALL_HINT}` adds it; its scores are null"
        return [None] * len(texts), note
    return judge_scores(judge, texts, emotion), None
