"""Folders written whole or not at all."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_folder(target: Path, tag: str = "") -> Iterator[Path]:
    """A new temporary folder beside ``target`` to write into; when the block ends normally it
    replaces ``target`` (a rename), when it raises it is removed. So ``target`` is never left
    half written.

    Args:
        tag: added to the temporary folder's name (``.<name>.<tag>XXXX``).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.{tag}", dir=target.parent))
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    work.rename(target)
