"""Optional dependencies: a command that needs an extra says which one to install.

The base install is the runtime (numpy, scipy, soundfile, onnxruntime). Training, evaluation
plots, the microphone, the Wyoming server, peers and speech synthesis each come with an extra
(``pyproject.toml``); :func:`require` imports a module of one or raises :class:`MissingExtra`
naming the ``pip install`` line.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(RuntimeError):
    """An optional dependency is not installed; the message says what to install."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtra`: "<purpose> needs the <extra> extra:
    pip install 'kws[<extra>]'"."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(f"{purpose} needs the {extra} extra: pip install 'kws[{extra}]' "
                           f"({e})") from e
