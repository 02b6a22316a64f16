"""Which versions of which packages made a thing: recorded in model and dataset manifests."""

from __future__ import annotations

from importlib import metadata


def package_versions(*names: str, missing: str | None = None) -> dict[str, str | None]:
    """The installed version of each package in `names`, or `missing` for one not installed."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = missing
    return found
