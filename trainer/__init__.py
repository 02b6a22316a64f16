"""The poetstudio pipeline: corpus, emotion labels, datasets, fine-tuning, jobs and evaluation.

UI-free: nothing here imports studio, textual, typer or rich (checked by import-linter, see
pyproject.toml). `common` is the floor every other package stands on.
"""
