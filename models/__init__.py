"""The bundled starter models: one folder per emotion, each with a poetstudio.json manifest."""

from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parent
