"""``kws train``: one model (:class:`kws.train.trainer.Trainer`) or an ensemble of members
(:mod:`kws.train.ensemble`, also for a second round on hard negatives), as the config's
``[train]`` says."""

from __future__ import annotations

from pathlib import Path

from kws.core.config import Config
from kws.train.ensemble import train_members
from kws.train.trainer import Trainer


def train(cfg: Config, out_dir: str | Path, resume: bool = False, progress: bool = True,
          device: str | None = None, make=Trainer) -> dict:
    """Train a model as configured into ``out_dir``; returns the metrics dict (also written to
    ``out_dir/metrics.json``). ``make(cfg, folder, device)`` makes the trainers (a student's,
    for distillation)."""
    if cfg.train.members > 1 or cfg.train.hard_negatives:
        return train_members(cfg, Path(out_dir), resume, progress, device, make)
    return make(cfg, Path(out_dir), device).run(resume=resume, progress=progress)
