"""Shared fixtures: a private data home for every test, and a tiny GPT-2 built once per session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import pytest
from typer.testing import CliRunner

from tests.helpers.models import build_tiny_base, build_tiny_lora
from trainer.common.bases import MARKER, OFFLINE_PRESET
from trainer.common.home import ENV_VAR, DataHome, resolve_home
from trainer.common.precision import NATIVE_BF16_ENV, cpu_reports_native_bf16

# The data home the tests were started with, read once before any test isolates itself: only the
# `real_base` fixture looks into it, and only to read its converted base model.
REAL_HOME = resolve_home()


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 folder, built once per test session."""
    return build_tiny_base(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own data home: $POETSTUDIO_HOME and the platform's data folder both
    point into its tmp dir, so no test reads or writes the user's real home by accident."""
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setattr("trainer.common.home.default_root", lambda: tmp_path / "platform-home")


def _no_timing(*args: Any) -> NoReturn:
    # pytest.fail raises past `except Exception`, which the timing's own fallback uses.
    pytest.fail("a test timed decode steps: pin the precision (fp32, bf16) instead")


@pytest.fixture(autouse=True)
def _pinned_decode_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    """`auto` never times decoding in a test: it follows the CPU's bf16 answer as
    $POETSTUDIO_CPU_BF16 states it (tests/rerun_numerics.py flips it; otherwise this CPU's own),
    and a timing fails the test. A test of the timed choice replaces the timing function."""
    from studio.core.generation.decode_precision import DECODE_PRECISION_ENV

    monkeypatch.delenv(DECODE_PRECISION_ENV, raising=False)
    if NATIVE_BF16_ENV not in os.environ:
        monkeypatch.setenv(NATIVE_BF16_ENV, "1" if cpu_reports_native_bf16() else "0")
    monkeypatch.setattr("studio.core.generation.decode_precision.measure", _no_timing)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DataHome:
    """A fresh data home, also exported through $POETSTUDIO_HOME."""
    data = DataHome(tmp_path / "home").ensure()
    monkeypatch.setenv(ENV_VAR, str(data.root))
    return data


@pytest.fixture
def real_base(home: DataHome) -> DataHome:
    """The test's own home with the real converted base linked in, read-only; skips without it.

    The base comes from the home the tests were started in ($POETSTUDIO_HOME or the user data
    folder), where `poetstudio setup` converts it. Opting in is explicit: ask for this fixture.
    """
    source = REAL_HOME.bases / OFFLINE_PRESET
    if not (source / MARKER).is_file():
        pytest.skip(
            f"no converted {OFFLINE_PRESET} base in {REAL_HOME.root}; run `poetstudio setup`"
        )
    os.symlink(source, home.bases / OFFLINE_PRESET, target_is_directory=True)
    return home


@pytest.fixture
def runner(
    home: DataHome, tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> CliRunner:
    """A CLI runner over a home with tiny neutral and joy models, and nothing bundled."""
    import models

    monkeypatch.setattr(models, "BUNDLED_DIR", tmp_path / "no-bundled")
    build_tiny_lora(tiny_base, home.models / "neutral", "neutral", seed=2)
    build_tiny_lora(tiny_base, home.models / "joy", "joy")
    return CliRunner()
