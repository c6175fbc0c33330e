"""Shared fixtures: where the shared data lives, and skips when it is absent."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_dir(*parts: str) -> Path:
    """A folder under ../shared/data, or skip the test saying which folder is missing."""
    path = SHARED.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent (a fresh clone has no ../shared)")
    return path
