"""The studio core: generation, model loading, the registry, poem files, settings and eval runs.

UI-free: it never imports textual or typer (checked by import-linter, see pyproject.toml).
"""
