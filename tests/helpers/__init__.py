"""Builders the tests share: tiny models, datasets and run configs, scored eval rows."""
