"""What an evaluation's figures are computed from, kept beside its report as ``scores.npz``.

:func:`kws.metrics.evaluate.evaluate` reduces every clip to its peak decision value per keyword
and every negative recording to its event count per threshold; with who made each, that is
enough to redraw the audio (:mod:`kws.metrics.interval`) for one model or for a figure over
many models scored on the same audio (``benchmarks/table_interval.py``). The file is read
without pickle and checked field by field: a report folder is not trusted.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np

from kws.metrics.interval import miss_intervals


@dataclass(frozen=True)
class Scores:
    """One model's scores on one evaluation's audio.

    Attributes:
        keywords: ``(K,)`` str, the model's keywords.
        peaks: ``(n_clips, K)`` float64, each positive clip's peak decision value per keyword.
        labels: ``(n_clips,)`` int64, each clip's keyword index.
        clip_speakers: ``(n_clips,)`` str, who said each clip (:func:`kws.data.corpora.speaker_of`).
        files: ``(n_files,)`` str, each negative recording's path.
        file_seconds: ``(n_files,)`` float64, each negative recording's length.
        file_speakers: ``(n_files,)`` str, who is heard in each.
        file_counts: ``(n_files, n_thr, K)`` int32, events per recording, threshold and keyword.
        thresholds: ``(n_thr,)`` float64, increasing.
    """

    keywords: np.ndarray
    peaks: np.ndarray
    labels: np.ndarray
    clip_speakers: np.ndarray
    files: np.ndarray
    file_seconds: np.ndarray
    file_speakers: np.ndarray
    file_counts: np.ndarray
    thresholds: np.ndarray

    def __post_init__(self) -> None:
        k, n_clips, n_files = len(self.keywords), len(self.labels), len(self.files)
        shapes = {"keywords": (k,), "peaks": (n_clips, k), "labels": (n_clips,),
                  "clip_speakers": (n_clips,), "files": (n_files,),
                  "file_seconds": (n_files,), "file_speakers": (n_files,),
                  "file_counts": (n_files, len(self.thresholds), k),
                  "thresholds": (len(self.thresholds),)}
        for name, shape in shapes.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                raise ValueError(f"scores field {name!r} has shape {got}; expected {shape}")
        if n_clips and not np.all((0 <= self.labels) & (self.labels < k)):
            raise ValueError(f"scores labels {sorted(set(self.labels.tolist()))}: each must "
                             f"name one of the {k} keywords")

    def keyword(self, k: int) -> dict:
        """Keyword ``k``'s arguments of :func:`kws.metrics.interval.miss_intervals`."""
        own = self.labels == k
        return {"peaks": self.peaks[own, k], "file_counts": self.file_counts[:, :, k],
                "file_seconds": self.file_seconds, "thresholds": self.thresholds,
                "clip_speakers": self.clip_speakers[own], "file_speakers": self.file_speakers}

    def intervals(self, k: int, budgets: Sequence[float]) -> list[tuple[float, float] | None]:
        """The 95% interval of keyword ``k``'s miss rate at each budget (FA/h)."""
        return miss_intervals(budgets=budgets, **self.keyword(k))

    def save(self, path: Path) -> None:
        np.savez_compressed(path, **{f.name: np.asarray(getattr(self, f.name))
                                     for f in fields(self)})

    @classmethod
    def load(cls, path: Path) -> Scores:
        """Read a ``scores.npz``; ValueError naming the file and what is wrong with it."""
        kinds = {"keywords": "U", "clip_speakers": "U", "files": "U", "file_speakers": "U",
                 "peaks": "f", "file_seconds": "f", "thresholds": "f", "labels": "iu",
                 "file_counts": "iu"}
        try:
            with np.load(path, allow_pickle=False) as saved:
                missing = set(kinds) - set(saved.files)
                if missing:
                    raise ValueError(f"no {sorted(missing)}")
                values = {name: saved[name] for name in kinds}
            for name, kind in kinds.items():
                if values[name].dtype.kind not in kind:
                    raise ValueError(f"{name!r} holds {values[name].dtype}, not {kind}")
            return cls(**values)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: not a kws scores file ({exc})") from None
