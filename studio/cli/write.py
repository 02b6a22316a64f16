"""CLI commands: `write` (poems from the command line) and opening the Textual studio."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from studio.cli.common import bundled_dir, err_console, handle_errors, home
from studio.cli.sampling_options import DeviceOption, PrecisionOption, with_sampling_options
from studio.core.generation import settings
from studio.core.generation.settings import SEED_LIMIT, SamplingParams
from trainer.common.errors import PoetstudioError

if TYPE_CHECKING:
    from studio.core.generation.poet import Poet


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command(name="write")(handle_errors(with_sampling_options(write)))


def write(
    emotion: Annotated[
        str,
        typer.Option(
            "--emotion",
            "-e",
            help="One of the 8 emotions or neutral, or a blend of emotions: "
            "joy+sadness (equal parts) or joy=0.7+sadness=0.3.",
        ),
    ],
    first_line: Annotated[
        str, typer.Option("--first-line", "-f", help="The poem's first line (empty: from nothing).")
    ] = "",
    count: Annotated[
        int, typer.Option("--count", "-n", min=1, max=100, help="How many poems.")
    ] = 1,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Append the poems to this file.")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="md, txt or jsonl: the --out file's format (default: its extension), "
            "or print whole entries in this format instead of bare poems.",
        ),
    ] = None,
    **sampling: Any,
) -> None:
    """Write poems for an emotion or a blend, streamed to the terminal; --out appends them to a
    poems file."""
    from studio.core.blend import parse_blend
    from studio.core.generation.poet import Poet
    from studio.core.poemfile import POEM_RULE, append_poem, format_for, render, saved_poem
    from studio.core.poemstats import runtime_label, stats_line
    from trainer.common.form import check_line_limit
    from trainer.common.precision import check_precision

    name = parse_blend(emotion).spec
    params = settings.make_params(sampling)
    if sampling.get("max_lines") is not None:
        check_line_limit(params.poem_form(), params.max_lines)  # an explicit limit must fit
    seed = params.seed
    if seed is not None and seed + count > SEED_LIMIT:
        # Poem i uses seed + i, so the last seed must be in range too.
        raise PoetstudioError(
            f"--seed {seed} with -n {count} would use seeds up to {seed + count - 1}; "
            f"the last must be below {SEED_LIMIT}"
        )
    if fmt is not None:
        fmt = format_for(Path("poems"), fmt)
    poet = Poet(
        home(),
        device=device,
        bundled_dir=bundled_dir(),
        precision=check_precision(precision.strip().lower()),
    )
    poet.model_info(name)  # fail before any loading if a part of the blend has no usable model
    tty = _stdout_is_tty()
    # With --format and no --out, stdout gets whole entries in that format instead of bare poems.
    entries = out is None and fmt is not None
    _load(poet, name, tty)
    empty = 0
    for index in range(count):
        if seed is not None:
            params.seed = seed + index
        if index and not entries:
            # The rule that ends a plain-text poems file's entries separates poems here too.
            sys.stdout.write(f"\n{POEM_RULE}\n\n")
        text = _one_poem(poet, name, first_line, params, stream=tty and not entries)
        stats = poet.last_stats
        assert stats is not None
        for notice in stats.notices:
            err_console.print(f"note: {notice}", markup=False, soft_wrap=True, style="yellow")
        entry = saved_poem(
            text,
            name,
            first_line=first_line.strip(),
            model=stats.model or "",
            sampling=params.to_dict(),
            seed=stats.seed,
            strength=stats.strength,
            runtime=runtime_label(stats),
        )
        if entries and fmt is not None:
            sys.stdout.write(render(entry, fmt))
        elif not tty:
            sys.stdout.write(text + "\n")
        sys.stdout.flush()
        if tty:
            err_console.print(stats_line(stats), markup=False, soft_wrap=True, style="dim")
        if out is not None and not text.strip():
            empty += 1  # never saved: an empty entry would read back as a phantom poem
        elif out is not None:
            where = append_poem(out, entry, fmt)
            err_console.print(
                f"saved to {where}", markup=False, soft_wrap=True, style="green" if tty else None
            )
    if empty:
        raise PoetstudioError(_empty_message(empty, count, out))


def _empty_message(empty: int, count: int, out: Path | None) -> str:
    """Why `empty` of `count` poems were not saved to `out`."""
    what = "the poem" if count == 1 else f"{empty} of the {count} poems"
    verb = "was" if count == 1 or empty == 1 else "were"
    return (
        f"{what} came out empty (the model wrote nothing), so {verb} not saved to {out}; "
        "try another --seed or first line, or check the model"
    )


def _stdout_is_tty() -> bool:
    """Whether stdout is a terminal: poems stream there; piped output gets plain text."""
    return sys.stdout.isatty()


def _load(poet: Poet, emotion: str, tty: bool) -> None:
    """Load the model, with a transient status line on a terminal."""
    if not tty:
        poet.load(emotion)
        return
    # Text, never a str: the spinner would read a folder named like `odd[/bold]` as markup.
    with err_console.status(Text(f"loading the {emotion} model…")) as status:

        def progress(fraction: float, message: str) -> None:
            status.update(Text(f"{message} ({fraction:.0%})"))

        poet.load(emotion, on_progress=progress)


def _one_poem(
    poet: Poet, emotion: str, first_line: str, params: SamplingParams, stream: bool
) -> str:
    """Generate one poem; on a terminal, write each chunk as it arrives."""
    chunks = []
    for chunk in poet.stream_poem(emotion, first_line, params):
        chunks.append(chunk)
        if stream:
            sys.stdout.write(chunk)
            sys.stdout.flush()
    text = "".join(chunks).strip("\n")
    if stream:
        sys.stdout.write("\n" if text else "")
    return text


def open_studio(device: str | None = None, precision: str = "auto") -> None:
    """Open the Textual studio (imported only now, so `poetstudio --help` stays fast)."""
    from studio.tui.app import PoetStudioApp

    PoetStudioApp(home=home(), device=device, precision=precision).run()
