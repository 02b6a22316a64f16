"""The words English verse ends its lines on, with how often: where a forced rhyme may come from.

A rhyme forced onto a line's last word reaches for whatever spells the sound ("macaroon",
"tablespoon") unless its candidates are words poets really end lines on. `data/line-ends.txt.gz`
lists every dictionary word that ends at least MIN_COUNT lines of the `clean` dataset's training
split (public-domain poetry), with its count: `word count` per line, commonest first. Rebuild it
from a data home with `python -m trainer.common.lineends HOME [DATASET]`.
"""

from __future__ import annotations

import functools
import gzip
import sys
from collections import Counter
from collections.abc import Iterable
from importlib import resources

from trainer.common import phonetics
from trainer.common.errors import PoetstudioError

DATA_FILE = "data/line-ends.txt.gz"
MIN_COUNT = 50


def count_line_ends(texts: Iterable[str]) -> Counter[str]:
    """How many lines of `texts` end on each word (lowercase, punctuation dropped)."""
    counts: Counter[str] = Counter()
    for text in texts:
        for line in text.splitlines():
            words = phonetics.words_of(line)
            if words:
                counts[words[-1]] += 1
    return counts


def render(counts: Counter[str], min_count: int = MIN_COUNT) -> str:
    """The shipped list: dictionary words ending at least `min_count` lines, commonest first."""
    kept = [
        (word, count)
        for word, count in counts.most_common()
        if count >= min_count and phonetics.is_known(word)
    ]
    return "".join(f"{word} {count}\n" for word, count in kept)


@functools.cache
def line_ends() -> dict[str, int]:
    """The shipped words and how many corpus lines end on each; read once."""
    try:
        raw = resources.files("trainer.common").joinpath(DATA_FILE).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise PoetstudioError(f"the word list {DATA_FILE} is missing from poetstudio") from exc
    table: dict[str, int] = {}
    for line in gzip.decompress(raw).decode("utf-8").splitlines():
        word, _, count = line.partition(" ")
        table[word] = int(count)
    return table


def main(argv: list[str]) -> None:
    """Print the list for the dataset of a data home (the maintainers' rebuild): the training
    split of `HOME/datasets/DATASET/poems.jsonl`."""
    import json
    from pathlib import Path

    dataset = argv[1] if len(argv) > 1 else "clean"
    path = Path(argv[0]) / "datasets" / dataset / "poems.jsonl"
    with path.open(encoding="utf-8") as lines:
        records = (json.loads(line) for line in lines)
        texts = (record["text"] for record in records if record["split"] == "train")
        sys.stdout.write(render(count_line_ends(texts)))


if __name__ == "__main__":
    main(sys.argv[1:])
