"""`auto` decodes on a CPU in whichever precision was timed faster here, cached per machine.

No test times anything: the timing function is replaced (the suite's fixture makes a real timing
fail), and the answers come from a fake timing or a cache file written by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from studio.core.generation import decode_precision
from studio.core.generation.decode_precision import (
    DECODE_PRECISION_ENV,
    cache_file,
    cache_key,
    measured_precision,
)
from studio.core.loader import ModelLoader
from studio.core.registry import read_model
from tests.helpers.models import build_tiny_lora
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.common.precision import NATIVE_BF16_ENV, cpu_has_native_bf16


class FakeTiming:
    """Stands in for `decode_precision.measure`: counts its calls, returns fixed step times."""

    def __init__(self, fp32: float, bf16: float) -> None:
        self.times = {"fp32": fp32, "bf16": bf16}
        self.calls: list[str] = []

    def __call__(self, backend: str, config: Any) -> dict[str, float]:
        self.calls.append(backend)
        return dict(self.times)


@pytest.fixture
def unpinned(monkeypatch: pytest.MonkeyPatch) -> None:
    """`auto` as a user's machine runs it: nothing in the environment pins it."""
    monkeypatch.delenv(NATIVE_BF16_ENV, raising=False)
    monkeypatch.delenv(DECODE_PRECISION_ENV, raising=False)


@pytest.fixture
def config(tiny_base: Path) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(tiny_base)


def timed(monkeypatch: pytest.MonkeyPatch, fp32: float, bf16: float) -> FakeTiming:
    fake = FakeTiming(fp32, bf16)
    monkeypatch.setattr(decode_precision, "measure", fake)
    return fake


def write_cache(home: DataHome, entries: dict[str, Any]) -> None:
    path = cache_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": 1, "entries": entries}))


@pytest.mark.usefixtures("unpinned")
def test_auto_uses_the_cached_answer_without_timing(
    home: DataHome, config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = timed(monkeypatch, fp32=1.0, bf16=9.0)  # were it timed, fp32 would win
    write_cache(home, {cache_key("torch", config): {"precision": "bf16"}})
    assert measured_precision(home, config) == "bf16"
    assert fake.calls == []


@pytest.mark.usefixtures("unpinned")
def test_a_first_use_times_once_and_caches_the_faster_precision(
    home: DataHome, config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = timed(monkeypatch, fp32=10.0, bf16=6.0)
    announced: list[bool] = []
    assert measured_precision(home, config, announce=lambda: announced.append(True)) == "bf16"
    assert measured_precision(home, config) == "bf16"
    assert fake.calls == ["torch"] and announced == [True]
    entry = json.loads(cache_file(home).read_text())["entries"][cache_key("torch", config)]
    assert entry["precision"] == "bf16" and entry["step_ms"] == {"fp32": 10.0, "bf16": 6.0}


@pytest.mark.usefixtures("unpinned")
@pytest.mark.parametrize(("fp32", "bf16", "chosen"), [(10.0, 9.8, "fp32"), (10.0, 30.0, "fp32")])
def test_bf16_is_chosen_only_when_clearly_faster(
    home: DataHome,
    config: Any,
    monkeypatch: pytest.MonkeyPatch,
    fp32: float,
    bf16: float,
    chosen: str,
) -> None:
    timed(monkeypatch, fp32=fp32, bf16=bf16)
    assert measured_precision(home, config) == chosen


@pytest.mark.usefixtures("unpinned")
@pytest.mark.parametrize(
    "damage",
    [
        "{not json",
        json.dumps({"format": 1, "entries": []}),
        json.dumps({"format": 99, "entries": {}}),
        "KEY",  # an entry for this machine naming no known precision
    ],
)
def test_a_damaged_cache_is_timed_again_and_rewritten(
    home: DataHome, config: Any, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    fake = timed(monkeypatch, fp32=5.0, bf16=50.0)
    key = cache_key("torch", config)
    if damage == "KEY":
        write_cache(home, {key: {"precision": "fp8"}})
    else:
        cache_file(home).parent.mkdir(parents=True, exist_ok=True)
        cache_file(home).write_text(damage)
    assert measured_precision(home, config) == "fp32"
    assert fake.calls == ["torch"]
    assert json.loads(cache_file(home).read_text())["entries"][key]["precision"] == "fp32"


@pytest.mark.usefixtures("unpinned")
def test_each_backend_keeps_its_own_entry(
    home: DataHome, config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = timed(monkeypatch, fp32=10.0, bf16=5.0)
    write_cache(home, {cache_key("torch", config): {"precision": "fp32"}})
    assert measured_precision(home, config, backend="llama") == "bf16"
    assert measured_precision(home, config, backend="torch") == "fp32"
    assert fake.calls == ["llama"]
    entries = json.loads(cache_file(home).read_text())["entries"]
    assert set(entries) == {cache_key("torch", config), cache_key("llama", config)}


@pytest.mark.usefixtures("unpinned")
@pytest.mark.parametrize("pinned", ["fp32", "BF16"])
def test_the_environment_pins_auto_without_timing(
    home: DataHome, config: Any, monkeypatch: pytest.MonkeyPatch, pinned: str
) -> None:
    fake = timed(monkeypatch, fp32=1.0, bf16=1.0)
    monkeypatch.setenv(DECODE_PRECISION_ENV, pinned)
    assert measured_precision(home, config) == pinned.lower()
    assert fake.calls == [] and not cache_file(home).exists()
    monkeypatch.setenv(DECODE_PRECISION_ENV, "half")
    with pytest.raises(PoetstudioError, match=f"{DECODE_PRECISION_ENV} must be fp32 or bf16"):
        measured_precision(home, config)


@pytest.mark.usefixtures("unpinned")
@pytest.mark.parametrize(("forced", "expected"), [("1", "bf16"), ("0", "fp32")])
def test_a_forced_cpu_answer_pins_auto_as_before(
    home: DataHome, config: Any, monkeypatch: pytest.MonkeyPatch, forced: str, expected: str
) -> None:
    fake = timed(monkeypatch, fp32=1.0, bf16=1.0)
    monkeypatch.setenv(NATIVE_BF16_ENV, forced)
    assert measured_precision(home, config) == expected
    assert fake.calls == []


@pytest.mark.usefixtures("unpinned")
def test_the_loader_loads_auto_in_the_cached_precision_and_honours_an_explicit_one(
    tiny_base: Path, home: DataHome, config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    fake = timed(monkeypatch, fp32=1.0, bf16=1.0)
    # The cache says the opposite of what this CPU's flags would pick.
    cached = "fp32" if cpu_has_native_bf16() else "bf16"
    write_cache(home, {cache_key("torch", config): {"precision": cached}})
    folder = build_tiny_lora(tiny_base, home.models / "joy", "joy")
    info = read_model(folder, "user", "joy")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[cached]
    assert ModelLoader(home, "cpu").load(info).module.dtype == dtype
    assert ModelLoader(home, "cpu", precision="fp32").load(info).module.dtype == torch.float32
    assert fake.calls == []


@pytest.mark.usefixtures("unpinned")
def test_a_timing_that_fails_falls_back_to_the_flags_and_caches_nothing(
    home: DataHome, config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(backend: str, config: Any) -> dict[str, float]:
        raise RuntimeError("this architecture cannot take a KV cache")

    monkeypatch.setattr(decode_precision, "measure", broken)
    flags = "bf16" if cpu_has_native_bf16() else "fp32"
    assert measured_precision(home, config) == flags
    assert not cache_file(home).exists()


def test_the_suite_never_times_decoding(home: DataHome, config: Any) -> None:
    """The suite's own fixture: `auto` is pinned, and a timing would fail the test."""
    assert measured_precision(home, config) in ("fp32", "bf16")
    assert not cache_file(home).exists()
    with pytest.raises(pytest.fail.Exception, match="pin the precision"):
        decode_precision.measure("torch", config)


def test_the_torch_timing_runs_a_decode_step_in_each_precision(config: Any) -> None:
    """The timing itself, on the tiny model (milliseconds): both precisions get a positive
    figure and the thread count is put back; which is faster is not asserted."""
    import torch

    threads = torch.get_num_threads()
    step_ms = decode_precision._torch_step_ms(config)
    assert set(step_ms) == {"fp32", "bf16"} and min(step_ms.values()) > 0
    assert torch.get_num_threads() == threads
