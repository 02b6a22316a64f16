"""The training loop, in-process on a tiny GPT-2: learning, packing, resume, saving, bad input."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tests.helpers.models import build_tiny_lora
from tests.helpers.training import events_of, new_job, tiny_config, write_dataset
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.training.events import EVENTS_FILE
from trainer.training.loop import CHECKPOINT_DIR, train
from trainer.training.packing import IGNORE, MIN_TRAIN_POEMS, pack

pytestmark = pytest.mark.numerics


@pytest.fixture
def data_home(home: DataHome) -> DataHome:
    write_dataset(home)
    return home


def test_loss_drops_on_a_small_repeated_corpus(data_home: DataHome, tiny_base: Path) -> None:
    job = new_job(data_home, "learn")
    config = tiny_config(tiny_base, method="full", lr=3e-3, max_steps=24, eval_every=12)
    result = train(config, data_home, job)
    steps = events_of(job, "step")
    evals = events_of(job, "eval")
    assert result.status == "done" and len(steps) == 24
    first = sum(e["loss"] for e in steps[:3]) / 3
    last = sum(e["loss"] for e in steps[-3:]) / 3
    assert last < first - 1.0, (first, last)
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]
    assert (data_home.models / "trust" / "model.safetensors").is_file()
    assert (data_home.models / "trust" / "tokenizer.json").is_file()


def test_manifest_and_model_card(data_home: DataHome, tiny_base: Path) -> None:
    job = new_job(data_home, "manifest")
    train(tiny_config(tiny_base, max_steps=4, eval_every=2), data_home, job)
    folder = data_home.models / "trust"
    manifest = json.loads((folder / "poetstudio.json").read_text())
    assert manifest["format"] == 1 and manifest["emotion"] == "trust"
    assert manifest["method"] == "lora"
    eot = AutoTokenizer.from_pretrained(tiny_base).eos_token_id
    assert manifest["poem_tokens"] == {"bos": eot, "eos": eot}
    assert manifest["base"]["spec"] == str(tiny_base.resolve())
    assert manifest["parent"] is None
    assert manifest["dataset"]["name"] == "clean"
    assert len(manifest["dataset"]["manifest_sha256"]) == 64
    assert manifest["dataset"]["train_poems"] == 70 and manifest["dataset"]["valid_poems"] == 10
    assert manifest["hyperparameters"]["lr"] == 1e-3
    assert manifest["hyperparameters"]["lora_rank"] == 16
    best = min(e["val_loss"] for e in events_of(job, "eval"))
    assert manifest["metrics"]["best_val_loss"] == pytest.approx(best, abs=1e-5)
    assert manifest["steps"] == 4 and manifest["device"] == "cpu"
    assert set(manifest["versions"]) >= {"torch", "transformers", "peft"}
    assert (folder / "adapter_model.safetensors").stat().st_size > 0
    # An adapter goes with its base's tokenizer, so it carries no copy of its own.
    assert not (folder / "tokenizer.json").exists()
    adapter = json.loads((folder / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == manifest["base"]["id"]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: peft" in card and "trust" in card


def test_packing_leaves_no_pad_in_the_loss(tiny_base: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    packed = pack([[1, 2, 3], [4, 5, 6, 7, 8]], block_size=3, pad_id=0)
    assert packed.input_ids.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 0]]
    assert packed.labels.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, IGNORE]]
    assert packed.content_tokens == 8 and packed.poems == 2
    # Whatever the padding token is, the loss is the same: pads are never scored.
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    seqs = [list(range(10, 30)), list(range(40, 53))]
    first = pack(seqs, block_size=16, pad_id=0)
    second = pack(seqs, block_size=16, pad_id=7)
    assert int((first.labels == IGNORE).sum()) == 16 * 3 - 33
    with torch.no_grad():
        one = model(input_ids=first.input_ids, labels=first.labels).loss
        two = model(input_ids=second.input_ids, labels=second.labels).loss
    assert float(one) == pytest.approx(float(two), abs=1e-6)


def test_resume_continues_exactly(data_home: DataHome, tiny_base: Path) -> None:
    config = tiny_config(tiny_base, max_steps=8, eval_every=3, lora_dropout=0.1)
    straight = new_job(data_home, "straight")
    train(config, data_home, straight)
    split = new_job(data_home, "split")
    stop = threading.Event()

    def stop_at_four(record: dict) -> None:
        if record["event"] == "step" and record["step"] == 4:
            stop.set()

    first = train(config, data_home, split, stop=stop, on_event=stop_at_four)
    assert first.status == "stopped" and first.step == 4
    assert (split / CHECKPOINT_DIR / "weights.safetensors").is_file()
    second = train(config, data_home, split, resume=True)
    assert second.status == "done" and second.step == 8
    expected = [e["loss"] for e in events_of(straight, "step")]
    got = [e["loss"] for e in events_of(split, "step")]
    assert got == pytest.approx(expected, abs=1e-5)
    assert [e["val_loss"] for e in events_of(split, "eval")] == pytest.approx(
        [e["val_loss"] for e in events_of(straight, "eval")], abs=1e-5
    )


def test_a_damaged_checkpoint_is_refused_and_kept(data_home: DataHome, tiny_base: Path) -> None:
    job = new_job(data_home, "damaged")
    stop = threading.Event()
    config = tiny_config(tiny_base, max_steps=6)
    train(config, data_home, job, stop=stop, on_event=lambda r: r["event"] == "step" and stop.set())
    weights = job / CHECKPOINT_DIR / "weights.safetensors"
    damaged = weights.read_bytes()[:-10] + b"0123456789"
    weights.write_bytes(damaged)
    with pytest.raises(PoetstudioError, match="damaged"):
        train(config, data_home, job, resume=True)
    assert weights.read_bytes() == damaged


def test_a_full_disk_during_save_keeps_the_previous_model(
    data_home: DataHome, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = build_tiny_lora(tiny_base, data_home.models / "trust", "trust")
    before = {p.name: p.read_bytes() for p in previous.iterdir()}

    def no_space(model: object, tokenizer: object, folder: Path, method: str, base_id: str) -> None:
        (folder / "adapter_model.safetensors").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("trainer.training.publish.write_model", no_space)
    with pytest.raises(PoetstudioError, match="previous model is intact"):
        train(tiny_config(tiny_base, max_steps=2), data_home, new_job(data_home, "full"))
    assert {p.name: p.read_bytes() for p in previous.iterdir()} == before
    assert [p.name for p in data_home.models.iterdir()] == ["trust"]


def test_an_emotion_starts_from_the_neutral_adapter(data_home: DataHome, tiny_base: Path) -> None:
    neutral = tiny_config(tiny_base, emotion="neutral", max_steps=2)
    train(neutral, data_home, new_job(data_home, "n"))
    job = new_job(data_home, "t")
    config = tiny_config(tiny_base, emotion="trust", max_steps=2)
    config.base = None  # follows the neutral model's base
    train(config, data_home, job)
    manifest = json.loads((data_home.models / "trust" / "poetstudio.json").read_text())
    assert manifest["parent"]["emotion"] == "neutral" and manifest["parent"]["job"] == "n"
    assert manifest["base"]["spec"] == str(tiny_base.resolve())
    assert events_of(job, "start")[0]["parent"] == "neutral"
    # --from-base ignores the neutral model.
    train(
        tiny_config(tiny_base, emotion="trust", max_steps=2, from_base=True),
        data_home,
        new_job(data_home, "t2"),
    )
    fresh = json.loads((data_home.models / "trust" / "poetstudio.json").read_text())
    assert fresh["parent"] is None


def test_an_emotion_keeps_the_poem_tokens_its_neutral_was_trained_with(
    data_home: DataHome, tiny_base: Path
) -> None:
    train(
        tiny_config(tiny_base, emotion="neutral", max_steps=2), data_home, new_job(data_home, "n")
    )
    neutral_manifest = data_home.models / "neutral" / "poetstudio.json"
    recorded = json.loads(neutral_manifest.read_text())
    recorded["poem_tokens"] = {"bos": 0, "eos": 7}
    neutral_manifest.write_text(json.dumps(recorded))
    config = tiny_config(tiny_base, emotion="trust", max_steps=2)
    config.base = None
    train(config, data_home, new_job(data_home, "t"))
    manifest = json.loads((data_home.models / "trust" / "poetstudio.json").read_text())
    assert manifest["poem_tokens"] == {"bos": 0, "eos": 7}


def test_early_stopping_keeps_the_best_weights(data_home: DataHome, tiny_base: Path) -> None:
    job = new_job(data_home, "early")
    config = tiny_config(
        tiny_base, method="full", lr=0.5, warmup=0.0, max_steps=20, eval_every=1, patience=2
    )
    result = train(config, data_home, job)
    evals = events_of(job, "eval")
    assert result.step < 20 and len(evals) >= 3
    assert not evals[-1]["best"] and not evals[-2]["best"]
    manifest = json.loads((data_home.models / "trust" / "poetstudio.json").read_text())
    assert "did not improve" in manifest["stop_reason"]
    best = min(e["val_loss"] for e in evals)
    assert manifest["metrics"]["best_val_loss"] == pytest.approx(best, abs=1e-5)


def test_no_dataset_names_the_build_command(home: DataHome, tiny_base: Path) -> None:
    with pytest.raises(PoetstudioError, match="poetstudio corpus build --split clean"):
        train(tiny_config(tiny_base), home, new_job(home, "nodata"))


def test_too_few_poems_gives_the_number(home: DataHome, tiny_base: Path) -> None:
    write_dataset(home, counts={"trust": 20, "neutral": 80})
    with pytest.raises(PoetstudioError, match=rf"only 17 trust poems.*at least {MIN_TRAIN_POEMS}"):
        train(tiny_config(tiny_base), home, new_job(home, "few"))


def test_a_base_that_cannot_be_loaded(data_home: DataHome, tmp_path: Path) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(PoetstudioError, match="cannot load base model"):
        train(tiny_config(empty), data_home, new_job(data_home, "nobase"))
    with pytest.raises(PoetstudioError, match="no model folder"):
        train(tiny_config(tmp_path / "missing"), data_home, new_job(data_home, "nobase2"))


def test_a_checkpoint_swap_cut_short_by_kill_9_still_resumes(tmp_path: Path) -> None:
    import torch

    from trainer.training.checkpoint import load_checkpoint, save_checkpoint

    folder = tmp_path / "checkpoint"
    save_checkpoint(folder, {"w": torch.ones(2)}, {"step": 3})
    save_checkpoint(folder, {"w": torch.full((2,), 2.0)}, {"step": 4})
    weights, state = load_checkpoint(folder)
    assert state["step"] == 4 and weights["w"].tolist() == [2.0, 2.0]
    # Killed between replace_dir's two renames: only the previous checkpoint, set aside, is left.
    folder.rename(tmp_path / ".checkpoint.old")
    weights, state = load_checkpoint(folder)
    assert state["step"] == 4


def test_step_losses_read_every_few_steps_give_the_same_step_events(
    data_home: DataHome, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_config(tiny_base, max_steps=7, eval_every=3, grad_accum=2)
    every_step = new_job(data_home, "every-step")
    train(config, data_home, every_step)
    # As on a GPU: losses stay on the device and are read four steps at a time (or at an eval).
    monkeypatch.setattr("trainer.training.loop.read_every", lambda _device: 4)
    batched = new_job(data_home, "batched")
    train(config, data_home, batched)
    fields = ("step", "epoch", "loss", "smooth_loss", "lr", "tokens")
    expected = [tuple(e[key] for key in fields) for e in events_of(every_step, "step")]
    assert [tuple(e[key] for key in fields) for e in events_of(batched, "step")] == expected
    assert len(expected) == 7
    kinds = [e["event"] for e in map(json.loads, (batched / EVENTS_FILE).read_text().splitlines())]
    # Each eval comes after the steps it follows, and the run ends with its final state.
    assert kinds.index("eval") == kinds.index("step") + 3 and kinds[-1] == "done"


def test_steps_held_back_by_the_throttle_are_written_when_a_run_fails(
    data_home: DataHome, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("trainer.training.events.STEP_WRITE_INTERVAL", 3600.0)

    def broken(*_args: object) -> float:
        raise RuntimeError("the GPU fell off the bus")

    monkeypatch.setattr("trainer.training.loop.validation_loss", broken)
    job = new_job(data_home, "fails")
    with pytest.raises(RuntimeError, match="fell off"):
        train(tiny_config(tiny_base, max_steps=6, eval_every=3), data_home, job)
    assert [e["step"] for e in events_of(job, "step")] == [1, 2, 3]


def test_step_events_report_throughput_and_no_mfu_on_the_cpu(
    data_home: DataHome, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POETSTUDIO_PEAK_TFLOPS", raising=False)
    job = new_job(data_home, "mfu")
    train(tiny_config(tiny_base, max_steps=2, eval_every=2), data_home, job)
    start = events_of(job, "start")[0]
    assert start["flops_per_token"] > 0 and start["peak_flops"] is None
    steps = events_of(job, "step")
    assert all(e["tokens_per_s"] > 0 and e["mfu"] is None for e in steps)
    # With a peak given for the device, the share follows from tokens/s and FLOPs per token.
    monkeypatch.setenv("POETSTUDIO_PEAK_TFLOPS", "1")
    job = new_job(data_home, "mfu-peak")
    train(tiny_config(tiny_base, max_steps=2, eval_every=2), data_home, job)
    per_token = events_of(job, "start")[0]["flops_per_token"]
    for step in events_of(job, "step"):
        assert step["mfu"] == pytest.approx(step["tokens_per_s"] * per_token / 1e12)


def test_the_manifest_records_attention_compile_and_the_batch_chosen(
    data_home: DataHome, tiny_base: Path
) -> None:
    job = new_job(data_home, "auto-batch")
    train(tiny_config(tiny_base, max_steps=2, eval_every=2, batch_size=None), data_home, job)
    hyper = json.loads((data_home.models / "trust" / "poetstudio.json").read_text())[
        "hyperparameters"
    ]
    assert hyper["attention"] == "sdpa" and hyper["compile"] == "off"
    assert hyper["batch_size"] == 8  # the CPU's default when none is given
    assert events_of(job, "start")[0]["batch_size"] == 8


def test_an_automatic_batch_is_a_power_of_two_that_fits_and_is_capped() -> None:
    from trainer.training.batchsize import MAX_AUTO_BATCH, fitting_batch

    gib = 2**30
    assert fitting_batch(140 * gib, per_token=1_200_000, block_size=128) == MAX_AUTO_BATCH
    assert fitting_batch(8 * gib, per_token=1_200_000, block_size=512) == 4
    assert fitting_batch(10**6, per_token=1_200_000, block_size=512) == 1


def test_compile_is_on_by_default_for_cuda_only() -> None:
    from trainer.training.loop import use_compile

    assert use_compile("auto", "cuda") and use_compile("auto", "cuda:1")
    assert not use_compile("auto", "cpu") and not use_compile("auto", "mps")
    assert use_compile("on", "cpu") and not use_compile("off", "cuda")


def test_compiled_and_plain_models_read_each_others_weights(tmp_path: Path) -> None:
    import torch

    from trainer.training.checkpoint import (
        copy_weights,
        load_checkpoint,
        save_checkpoint,
        trainable_weights,
    )

    class Compiled(torch.nn.Module):
        """Stands in for torch.compile's wrapper, which keeps the model as `_orig_mod`."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self._orig_mod = inner

    plain = torch.nn.Sequential(torch.nn.Linear(3, 2))
    wrapped = Compiled(torch.nn.Sequential(torch.nn.Linear(3, 2)))
    assert "_orig_mod.0.weight" in dict(wrapped.named_parameters())
    assert (
        set(trainable_weights(wrapped)) == set(trainable_weights(plain)) == {"0.weight", "0.bias"}
    )
    # A checkpoint written with the wrapper's names loads into the plain model, and back.
    prefixed = {f"_orig_mod.{name}": p for name, p in plain.named_parameters()}
    save_checkpoint(tmp_path / "ck", prefixed, {"step": 1})
    weights, _state = load_checkpoint(tmp_path / "ck")
    assert set(weights) == {"0.weight", "0.bias"}
    copy_weights(wrapped, weights)
    assert torch.equal(wrapped._orig_mod[0].weight, plain[0].weight)
    copy_weights(plain, {name: torch.zeros_like(p) for name, p in prefixed.items()})
    assert not plain[0].weight.any()
