"""The data home: one directory for the corpus, datasets, base weights, models, jobs and poems."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from trainer.common.atomic import recover_swaps

ENV_VAR = "POETSTUDIO_HOME"


@dataclass(frozen=True)
class DataHome:
    """Where poetstudio keeps everything it downloads, builds and writes."""

    root: Path

    @property
    def corpus(self) -> Path:
        """Downloaded corpora and mirror wheels."""
        return self.root / "corpus"

    @property
    def datasets(self) -> Path:
        """Built datasets, one folder each."""
        return self.root / "datasets"

    @property
    def bases(self) -> Path:
        """Pretrained base models converted or cached for offline use."""
        return self.root / "bases"

    @property
    def models(self) -> Path:
        """The user's own trained emotion models, `models/<emotion>/`."""
        return self.root / "models"

    @property
    def jobs(self) -> Path:
        """One folder per training job: its events, log and checkpoints."""
        return self.root / "jobs"

    @property
    def evals(self) -> Path:
        """Evaluation reports."""
        return self.root / "eval"

    @property
    def poems_file(self) -> Path:
        """The default file that saved poems are appended to."""
        return self.root / "poems.md"

    @property
    def settings_file(self) -> Path:
        """The studio's remembered settings."""
        return self.root / "settings.json"

    def ensure(self) -> DataHome:
        """Create the home and its folders if they are missing, and recover cut-short swaps."""
        for path in (self.corpus, self.datasets, self.bases, self.models, self.jobs):
            path.mkdir(parents=True, exist_ok=True)
        self.recover()
        return self

    def recover(self) -> list[Path]:
        """Put back every model, dataset or base that a crash mid-swap left only set aside.

        A crash between the two renames of a folder swap (trainer/common/atomic.py) leaves the
        previous folder whole as `.<name>.old` and no live one; this renames it back.
        Returns those folders.
        """
        return [
            path
            for folder in (self.models, self.datasets, self.bases)
            for path in recover_swaps(folder)
        ]


def default_root() -> Path:
    """The platform's user data directory for poetstudio."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("poetstudio", appauthor=False))


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> DataHome:
    """Pick the data home: an explicit path, then $POETSTUDIO_HOME, then the platform default."""
    if explicit:
        root = Path(explicit)
    elif os.environ.get(ENV_VAR):
        root = Path(os.environ[ENV_VAR])
    else:
        root = default_root()
    return DataHome(root.expanduser().resolve())
