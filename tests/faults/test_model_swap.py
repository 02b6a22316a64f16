"""Faults in the folder swap that publishes models, datasets, bases and checkpoints.

One routine (trainer/common/atomic.py `staged_dir` / `replace_dir`) swaps every folder in: it
catches every error of the save and removes its staging folder, follows a symlinked folder (the
target is replaced, the link kept), and a model that a crash left only as `.<name>.old` is put back
when the data home is opened. A message says the previous model is intact only when it is.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from safetensors import SafetensorError

from tests.helpers.models import build_tiny_lora
from tests.helpers.training import tiny_config, write_dataset
from trainer.common.atomic import recover_swaps, replace_dir, staged_dir
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.corpus.dataset import build_dataset
from trainer.corpus.sources import read_path, save_source
from trainer.training.loop import train


def new_job(home: DataHome, name: str) -> Path:
    job = home.jobs / name
    job.mkdir(parents=True)
    return job


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Staging and set-aside folders a swap left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def data_home(home: DataHome) -> DataHome:
    write_dataset(home)
    return home


def quick(tiny_base: Path) -> object:
    return tiny_config(tiny_base, max_steps=2, eval_every=2)


def test_a_safetensors_error_on_a_full_disk_keeps_the_previous_model_and_no_staging(
    data_home: DataHome, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer.training import publish

    previous = build_tiny_lora(tiny_base, data_home.models / "trust", "trust")
    before = contents(previous)
    real = publish.write_model

    def full_disk(model: object, tokenizer: object, folder: Path, *rest: object) -> None:
        real(model, tokenizer, folder, *rest)  # half the files are written, then the disk fills
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(publish, "write_model", full_disk)
    with pytest.raises(PoetstudioError) as caught:
        train(quick(tiny_base), data_home, new_job(data_home, "full"))
    message = str(caught.value)
    assert "\n" not in message
    assert "No space left on device" in message and "the previous model is intact" in message
    assert contents(previous) == before
    assert leftovers(data_home.models) == []


def test_without_a_previous_model_the_message_does_not_claim_one(
    data_home: DataHome, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr("trainer.training.publish.write_model", broken)
    with pytest.raises(PoetstudioError, match="no model was replaced") as caught:
        train(quick(tiny_base), data_home, new_job(data_home, "first"))
    assert "intact" not in str(caught.value)
    assert leftovers(data_home.models) == [] and not (data_home.models / "trust").exists()


def test_a_symlinked_model_folder_is_followed_and_later_trains_still_work(
    data_home: DataHome, tiny_base: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "other-disk" / "trust-model"
    build_tiny_lora(tiny_base, elsewhere, "trust")
    link = data_home.models / "trust"
    link.symlink_to(elsewhere, target_is_directory=True)
    for job in ("one", "two"):
        train(quick(tiny_base), data_home, new_job(data_home, job))
        assert link.is_symlink() and link.resolve() == elsewhere.resolve()
        manifest = json.loads((elsewhere / "poetstudio.json").read_text())
        assert manifest["job"] == job
        assert leftovers(data_home.models) == [] and leftovers(elsewhere.parent) == []


def test_a_symlinked_dataset_folder_is_followed_on_every_rebuild(
    home: DataHome, tmp_path: Path
) -> None:
    verse = "O weep for the friend that is gone,\nhis grave is cold beneath the rain,\n"
    corpus = tmp_path / "poems.txt"
    corpus.write_text("\n".join([verse * 2] * 3), encoding="utf-8")
    save_source(home, read_path(corpus).source)
    elsewhere = tmp_path / "big-disk" / "clean"
    elsewhere.mkdir(parents=True)
    (elsewhere / "old.txt").write_text("the previous dataset")
    (home.datasets / "clean").symlink_to(elsewhere, target_is_directory=True)
    for _ in range(2):
        build_dataset(home, "autocompose", name="clean")
        assert (home.datasets / "clean").is_symlink()
        assert (elsewhere / "manifest.json").is_file() and not (elsewhere / "old.txt").exists()
        assert leftovers(home.datasets) == [] and leftovers(elsewhere.parent) == []


def test_a_looping_or_dangling_symlink_is_refused_up_front(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(PoetstudioError, match="symlink that loops"), staged_dir(loop):
        pass
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "no-such-folder" / "model")
    with pytest.raises(PoetstudioError, match="whose folder does not exist"), staged_dir(dangling):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "loop"]


def test_a_stale_old_symlink_left_by_an_earlier_swap_no_longer_breaks_training(
    data_home: DataHome, tiny_base: Path, tmp_path: Path
) -> None:
    kept = tmp_path / "users-own-model"
    build_tiny_lora(tiny_base, kept, "trust")
    before = contents(kept)
    build_tiny_lora(tiny_base, data_home.models / "trust", "trust")
    (data_home.models / ".trust.old").symlink_to(kept, target_is_directory=True)
    train(quick(tiny_base), data_home, new_job(data_home, "after"))
    assert leftovers(data_home.models) == []
    assert contents(kept) == before  # the link went, never what it pointed to


def test_a_crash_between_the_two_renames_is_recovered_when_the_home_is_opened(
    home: DataHome, tiny_base: Path
) -> None:
    from studio.core.registry import scan_models

    model = build_tiny_lora(tiny_base, home.models / "joy", "joy")
    before = contents(model)
    model.rename(home.models / ".joy.old")  # killed after setting it aside, before the new one
    assert home.recover() == [home.models / "joy"]
    assert contents(home.models / "joy") == before and leftovers(home.models) == []
    # The studio and `write` see the model again: the registry's scan recovers first.
    (home.models / "joy").rename(home.models / ".joy.old")
    scan = scan_models(home, home.root / "no-bundled")
    assert "joy" in scan.models and contents(home.models / "joy") == before
    # And so does `DataHome.ensure`, which every command that writes calls.
    (home.models / "joy").rename(home.models / ".joy.old")
    home.ensure()
    assert contents(home.models / "joy") == before


def test_a_crash_mid_swap_of_a_symlinked_model_is_recovered_at_its_target(
    home: DataHome, tiny_base: Path, tmp_path: Path
) -> None:
    target = build_tiny_lora(tiny_base, tmp_path / "disk" / "joy-model", "joy")
    (home.models / "joy").symlink_to(target, target_is_directory=True)
    target.rename(target.with_name(".joy-model.old"))
    assert recover_swaps(home.models) == [home.models / "joy"]
    assert (target / "poetstudio.json").is_file()


def test_a_swap_recovers_an_orphan_before_replacing_instead_of_deleting_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = tmp_path / "model"
    (tmp_path / ".model.old").mkdir()
    (tmp_path / ".model.old" / "weights").write_text("the only copy")
    staged = tmp_path / "staged"
    staged.mkdir()
    real = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        if Path(src) == staged:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)

    # The new folder cannot move in: the previous one, recovered first, must be back, whole.
    monkeypatch.setattr("trainer.common.atomic.os.replace", replace)
    with pytest.raises(OSError, match="No space"):
        replace_dir(staged, final)
    assert (final / "weights").read_text() == "the only copy"
    assert not (tmp_path / ".model.old").exists()


def test_when_the_previous_model_cannot_be_put_back_the_message_says_where_it_is(
    data_home: DataHome, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_tiny_lora(tiny_base, data_home.models / "trust", "trust")
    real = os.replace
    aside = data_home.models / ".trust.old"

    def replace(src: str | Path, dst: str | Path) -> None:
        if Path(dst) == data_home.models / "trust" and Path(src).name.startswith(".trust."):
            raise OSError(errno.EIO, "Input/output error")  # neither the new nor the old moves in
        real(src, dst)

    monkeypatch.setattr("trainer.common.atomic.os.replace", replace)
    with pytest.raises(PoetstudioError) as caught:
        train(quick(tiny_base), data_home, new_job(data_home, "eio"))
    message = str(caught.value)
    assert "intact" not in message and str(aside) in message and "rename it" in message
    assert (aside / "poetstudio.json").is_file()  # whole, where the message says
    assert not any(name.startswith(".trust.staging") for name in leftovers(data_home.models))
    monkeypatch.undo()
    data_home.recover()
    assert (data_home.models / "trust" / "poetstudio.json").is_file()


def test_failing_to_delete_the_old_folder_does_not_fail_a_finished_swap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = tmp_path / "model"
    final.mkdir()
    (final / "v").write_text("1")

    def cannot(_path: Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("trainer.common.atomic.shutil.rmtree", cannot)
    with staged_dir(final) as staged:
        (staged / "v").write_text("2")
    assert (final / "v").read_text() == "2"
    monkeypatch.undo()
    with staged_dir(final) as staged:  # the stale copy is cleared by the next swap
        (staged / "v").write_text("3")
    assert (final / "v").read_text() == "3" and sorted(p.name for p in tmp_path.iterdir()) == [
        "model"
    ]


@pytest.mark.parametrize("error", [SafetensorError("boom"), KeyboardInterrupt(), ValueError("x")])
def test_any_error_while_staging_removes_the_staging_folder_and_keeps_the_old(
    tmp_path: Path, error: BaseException
) -> None:
    final = tmp_path / "checkpoint"
    final.mkdir()
    (final / "meta.json").write_text("old")
    with pytest.raises(type(error)), staged_dir(final) as staged:
        (staged / "meta.json").write_text("new, half")
        raise error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert (final / "meta.json").read_text() == "old"
