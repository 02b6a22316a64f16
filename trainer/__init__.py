"""The poetstudio pipeline: corpus, emotion labels, datasets, fine-tuning and evaluation.

Nothing in this package imports a UI library.
"""
