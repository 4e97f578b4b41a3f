"""Installed package versions, for what run.json and the backends' descriptions record."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None when it is absent."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None
