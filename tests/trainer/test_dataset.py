"""Datasets: atomic build, manifest, stable ids and splits, fast filtered reading, failures."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from trainer.common.emotions import EMOTIONS, LABELS
from trainer.common.errors import PoetstudioError
from trainer.corpus import dataset as dataset_module
from trainer.corpus.dataset import (
    MANIFEST_FILE,
    POEMS_FILE,
    build_dataset,
    dataset_dir,
    iter_poems,
    load_manifest,
    split_of,
)
from trainer.corpus.sources import read_path, save_source

POEMS = [
    [
        "O weep for the friend that is gone,",
        "his grave is cold beneath the rain,",
        "and grief is all the mourner knows.",
        "The tears fall down upon the stone.",
    ],
    [
        "Joy comes laughing over the green hill,",
        "the morning sings and the bells ring sweet,",
        "and love is in the happy air,",
        "the children dance along the street.",
    ],
    [
        "I fear the dark wood and the howling wind,",
        "the night is full of terror and of dread,",
        "the monster waits beneath the bridge,",
        "and horror walks where angels fled.",
    ],
    [
        "The river runs beside the road,",
        "the road goes on beside the hill,",
        "the hill is there beside the wood,",
        "and there the water lies so still.",
    ],
    [
        "Trust in the faithful heart that keeps its vow,",
        "the true friend stands beside me now,",
        "his word is sure, his hand is strong,",
        "and joy and grief go all along.",
    ],
]


def _corpus_file(folder: Path, poems=POEMS) -> Path:
    path = folder / "poems.ndjson"
    rows = [{"s": line, "gid": str(i)} for i, poem in enumerate(poems) for line in poem]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def fetched(home, tmp_path):
    save_source(home, read_path(_corpus_file(tmp_path)).source)
    return home


def test_build_writes_poems_and_a_complete_manifest(fetched):
    manifest = build_dataset(fetched, "clean")
    folder = dataset_dir(fetched, "clean")
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST_FILE, POEMS_FILE]
    assert manifest == load_manifest(fetched, "clean")
    assert manifest["poems"] == 5
    assert sum(manifest["counts"].values()) == 5
    assert set(manifest["counts"]) == set(LABELS)
    assert manifest["source"]["kind"] == "path" and len(manifest["source"]["sha256"]) == 64
    assert manifest["split"]["name"] == "clean" and manifest["split"]["stats"]["kept"] == 5
    assert manifest["split"]["rules"]["lines"]
    assert manifest["labeller"]["min_margin"] == 1 and manifest["labeller"]["lowercase"]
    assert {"python", "nrclex", "poetstudio"} <= set(manifest["versions"])
    assert manifest["created"]
    records = [json.loads(line) for line in (folder / POEMS_FILE).read_text().splitlines()]
    first = records[0]
    assert set(first) == {"id", "text", "gid", "counts", "label", "split", "lines", "words"}
    assert first["text"] == "\n".join(POEMS[0])
    assert first["gid"] == "0" and first["lines"] == 4 and first["words"] == 29
    assert list(first["counts"]) == list(EMOTIONS)
    assert first["label"] == "sadness"
    assert records[3]["label"] == "neutral"


def test_ids_and_splits_are_stable_across_rebuilds_and_orders(fetched, tmp_path):
    build_dataset(fetched, "clean")
    before = {p.text: (p.id, p.split) for p in iter_poems(fetched, "clean")}
    other = tmp_path / "other"
    other.mkdir()
    save_source(fetched, read_path(_corpus_file(other, list(reversed(POEMS)))).source)
    build_dataset(fetched, "clean")
    after = {p.text: (p.id, p.split) for p in iter_poems(fetched, "clean")}
    assert before == after


def test_hash_split_holds_out_about_the_valid_fraction():
    import hashlib

    digests = [hashlib.sha1(str(i).encode()).hexdigest() for i in range(20000)]
    share = sum(split_of(d) == "valid" for d in digests) / len(digests)
    assert 0.04 < share < 0.06


def test_iter_poems_filters_by_split_and_label(fetched, monkeypatch):
    monkeypatch.setattr(
        dataset_module, "split_of", lambda digest: "valid" if digest < "8" else "train"
    )
    build_dataset(fetched, "clean")
    everything = list(iter_poems(fetched, "clean"))
    valid = list(iter_poems(fetched, "clean", split="valid"))
    assert valid and all(p.split == "valid" for p in valid)
    assert len(valid) + len(list(iter_poems(fetched, "clean", split="train"))) == 5
    sad = list(iter_poems(fetched, "clean", labels=["sadness", "neutral"]))
    assert {p.label for p in sad} == {"sadness", "neutral"}
    assert len(everything) == 5


def test_relabel_with_a_larger_margin(fetched):
    build_dataset(fetched, "clean")
    poem = next(iter_poems(fetched, "clean", labels=["sadness"]))
    ranked = sorted(poem.counts.values(), reverse=True)
    assert poem.relabel(ranked[0] - ranked[1] + 1) == "mixed"


def test_min_margin_and_name_are_recorded(fetched):
    manifest = build_dataset(fetched, "autocompose", min_margin=2, name="strong")
    assert manifest["name"] == "strong" and manifest["labeller"]["min_margin"] == 2
    assert load_manifest(fetched, "strong")["split"]["name"] == "autocompose"


def test_missing_dataset_names_the_build_command(home):
    with pytest.raises(PoetstudioError, match="poetstudio corpus build --split autocompose"):
        list(iter_poems(home, "autocompose"))


def test_build_without_a_fetched_corpus_says_how_to_fetch(home):
    with pytest.raises(PoetstudioError, match="corpus fetch"):
        build_dataset(home, "clean")


def test_write_error_during_build_leaves_the_previous_dataset_intact(fetched, monkeypatch):
    build_dataset(fetched, "clean")
    folder = dataset_dir(fetched, "clean")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    real = dataset_module.write_poems

    def failing(path, chunks, min_margin, tally):
        real(path, chunks[:2], min_margin, tally)
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(dataset_module, "write_poems", failing)
    with pytest.raises(OSError, match="No space left"):
        build_dataset(fetched, "clean", min_margin=3)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in fetched.datasets.iterdir()) == ["clean"]


def test_truncated_gzip_source_leaves_no_partial_dataset(home, tmp_path):
    good = _corpus_file(tmp_path)
    gz = tmp_path / "c.ndjson.gz"
    gz.write_bytes(gzip.compress(good.read_bytes() * 50))
    save_source(home, read_path(gz).source)
    gz.write_bytes(gz.read_bytes()[:-40])
    with pytest.raises(PoetstudioError, match="c.ndjson.gz is truncated"):
        build_dataset(home, "clean")
    assert list(home.datasets.iterdir()) == []


def test_a_corpus_without_poems_is_refused(home, tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("one line only\n\nand another\n", encoding="utf-8")
    save_source(home, read_path(path).source)
    with pytest.raises(PoetstudioError, match="found no poems"):
        build_dataset(home, "clean")
    assert list(home.datasets.iterdir()) == []


def test_unknown_split_and_bad_margin_are_refused(fetched):
    with pytest.raises(PoetstudioError, match="unknown split"):
        build_dataset(fetched, "fancy")
    with pytest.raises(PoetstudioError, match="min-margin"):
        build_dataset(fetched, "clean", min_margin=0)
