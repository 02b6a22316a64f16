"""Fixtures of the core's tests: a Poet on the tiny base that every comparison can pin."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.core.generation.poet import Poet
from tests.helpers.models import build_guided_adapters, pinned_poet
from trainer.common.home import DataHome


@pytest.fixture
def poet(tiny_base: Path, home: DataHome, tmp_path: Path) -> Poet:
    """A Poet with neutral, joy and sadness adapters on the tiny base, fp32 on one thread (a
    module that needs another precision defines its own `poet`)."""
    build_guided_adapters(tiny_base, home.models)
    return pinned_poet(home, tmp_path / "no-bundled", precision="fp32")
