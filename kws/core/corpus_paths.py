"""Where ``corpus:NAME`` folders of a config live: the data root (``kws data get`` fills it)."""

from __future__ import annotations

import os
from pathlib import Path

from kws.core.checks import ConfigError

CORPUS_PREFIX = "corpus:"


def data_root() -> Path:
    """Where ``corpus:`` folders live when the config does not say: ``$KWS_DATA``, else
    ``~/kws-data`` (where ``kws data get`` puts them)."""
    return Path(os.environ.get("KWS_DATA") or Path.home() / "kws-data").expanduser()


def resolve_corpus(spec: str, root: Path) -> Path:
    """``corpus:NAME[/SUB]`` -> ``root/NAME[/SUB]``, never outside ``root``."""
    parts = Path(spec[len(CORPUS_PREFIX):].strip("/")).parts
    if not parts or any(p in ("..", ".") for p in parts):
        raise ConfigError(f"{spec!r} is not allowed; expected corpus:NAME or corpus:NAME/FOLDER")
    return root.joinpath(*parts)
