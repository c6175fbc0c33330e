"""Checkpoints: a trained model's weights and run config as plain data, written atomically and
read without running code from the file.

A checkpoint is a dict saved with ``torch.save``: ``model`` (a state dict of tensors),
``config`` (the run config as plain dicts, lists, strings and numbers,
:func:`kws.core.config.to_dict`), ``config_root``, ``epoch``, and what the trainer adds
(optimizer state, history). It is read with ``torch.load(weights_only=True)``, which rebuilds
only tensors and plain containers: a crafted ``.pt`` whose pickle would run code is refused with
:class:`CheckpointError` instead. Export and evaluation read checkpoints through this module,
never through the trainer.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kws.core.config import Config, config_from_dict
from kws.train.model import KeywordModel

BEST, LAST = "best.pt", "checkpoint.pt"


class CheckpointError(ValueError):
    """A file is not a readable kws checkpoint; the message names it and why."""


def resolve(path: str | Path) -> Path:
    """A checkpoint file: ``path`` itself, or ``best.pt`` inside a run folder."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return path


def read(path: str | Path, device: str = "cpu") -> dict[str, Any]:
    """The checkpoint dict, loaded without executing code.

    Raises:
        FileNotFoundError: no such file (or no ``best.pt`` in the run folder).
        CheckpointError: the file holds more than tensors and plain data (it is refused, not
            run), is corrupt, or lacks ``model`` and ``config``.
    """
    path = resolve(path)
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        detail = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if detail is None:
            raise CheckpointError(f"{path}: not a readable checkpoint (not a torch.save file of "
                                  "plain data)") from e
        raise CheckpointError(f"{path}: refused: it holds objects other than tensors and plain "
                              f"data ({detail.group(1)}), and loading them would run code from "
                              "the file (a kws checkpoint never does)") from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({e})") from e
    if not (isinstance(saved, dict) and isinstance(saved.get("model"), dict)
            and isinstance(saved.get("config"), dict)):
        raise CheckpointError(f"{path}: not a kws checkpoint (expected a dict with 'model' "
                              "weights and a 'config')")
    return saved


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and tuples made plain Python (what weights_only reads)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` through a temporary file, so a crash never leaves half a
    checkpoint; values other than tensors and state dicts are made plain first."""
    keep = {"model", "optimizer", "scheduler"}
    state = {k: v if k in keep else plain(v) for k, v in state.items()}
    tmp = path.parent / f".{path.name}.tmp"
    torch.save(state, tmp)
    tmp.replace(path)


def upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """A model state dict of an older kws (one ``gru``) in today's names (``grus.0``)."""
    return {("grus.0." + k[4:] if k.startswith("gru.") else k): v for k, v in state.items()}


def config_of(saved: dict[str, Any]) -> Config:
    """The run config stored in a checkpoint dict (validated like a config file)."""
    return config_from_dict(saved["config"], root=Path(str(saved.get("config_root", "."))))


def load_model(path: str | Path, device: str = "cpu") -> tuple[KeywordModel, Config]:
    """A trained model (in eval mode) and its config from a checkpoint or a run folder."""
    saved = read(path, device)
    cfg = config_of(saved)
    model = KeywordModel(cfg.model, cfg.frontend).to(device)
    try:
        model.load_state_dict(upgrade(saved["model"]))
    except RuntimeError as e:
        raise CheckpointError(f"{resolve(path)}: weights do not fit its config ({e})") from e
    model.eval()
    return model, cfg
