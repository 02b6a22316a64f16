"""Detached training jobs: their folders, processes, event files and per-emotion locks."""
