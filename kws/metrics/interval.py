"""How far a miss rate at a false-alarm budget could move on other audio: a bootstrap interval.

A miss rate "at 0.5 FA/h" on a few hours of negatives rests on the two or three highest-scoring
negative moments, which set the threshold, and on a few hundred positive clips: another set of
recordings of the same kind gives another figure. :func:`miss_intervals` redraws both sets with
replacement, a speaker at a time (all of a speaker's negative recordings and clips together, so
one voice that fires often is one draw, not many; :func:`kws.data.corpora.speaker_of` names the
speaker, and a file whose name carries none is its own), finds the budget's threshold on each
redrawn negative set exactly as the report does (:meth:`kws.metrics.det.Det.operating_point`),
reads the redrawn positives' miss rate there, and returns the central ``level`` share of those
rates. Pure numpy, seeded: the same inputs give the same interval.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from kws.metrics.det import Det

RESAMPLES = 1000
LEVEL = 0.95


def miss_intervals(peaks: np.ndarray, file_counts: np.ndarray, file_seconds: np.ndarray,
                   thresholds: np.ndarray, budgets: Sequence[float],
                   clip_speakers: Sequence[str] | None = None,
                   file_speakers: Sequence[str] | None = None, resamples: int = RESAMPLES,
                   level: float = LEVEL, seed: int = 0) -> list[tuple[float, float] | None]:
    """The ``level`` bootstrap interval of the miss rate at each of ``budgets`` false alarms per
    hour, all from the same redrawn sets.

    Args:
        peaks: ``(n_clips,)`` each positive clip's peak decision value for the keyword.
        file_counts: ``(n_files, n_thr)`` the keyword's events in each negative recording at each
            threshold (:func:`kws.metrics.det.file_event_counts`).
        file_seconds: ``(n_files,)`` each negative recording's length in seconds.
        thresholds: ``(n_thr,)`` increasing.
        budgets: false alarms per hour (each > 0).
        clip_speakers, file_speakers: ``(n_clips,)``, ``(n_files,)`` who made each clip and each
            recording, redrawn a speaker at a time; None: each is its own.

    Returns:
        per budget, (low, high) miss rates in [0, 1]; None without positive clips.

    Raises:
        ValueError: naming a bad ``level``, ``resamples`` or budget, or shapes that disagree.
    """
    peaks = np.asarray(peaks, dtype=np.float64)
    counts = np.asarray(file_counts, dtype=np.float64)
    seconds = np.asarray(file_seconds, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if not 0 < level < 1:
        raise ValueError(f"interval level {level}: must be between 0 and 1, e.g. 0.95")
    if resamples < 1:
        raise ValueError(f"resamples {resamples}: at least 1")
    if any(b <= 0 for b in budgets):
        raise ValueError(f"budgets {list(budgets)} FA/h: each must be > 0")
    if counts.shape != (len(seconds), len(thresholds)) or len(seconds) == 0:
        raise ValueError(f"file_counts of shape {counts.shape}: expected (files, thresholds) = "
                         f"({len(seconds)}, {len(thresholds)}) with at least one file")
    if np.any(seconds <= 0):
        raise ValueError(f"negative recordings of {seconds.min()} s: every one must be > 0 s")
    if len(peaks) == 0:
        return [None for _ in budgets]
    rng = np.random.default_rng(seed)
    files = redraws(rng, len(seconds), file_speakers, resamples)
    clips = redraws(rng, len(peaks), clip_speakers, resamples)
    values = redrawn_misses(peaks, counts, seconds, thresholds, budgets, files, clips)
    return [central(column, level) for column in values.T]


def central(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The bounds of the central ``level`` share of ``(resamples,)`` redrawn values."""
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def redrawn_misses(peaks: np.ndarray, file_counts: np.ndarray, file_seconds: np.ndarray,
                   thresholds: np.ndarray, budgets: Sequence[float], files: np.ndarray,
                   clips: np.ndarray) -> np.ndarray:
    """The miss rate at each budget on each redraw: ``(resamples, len(budgets))``, for the
    redraws ``files`` ``(resamples, n_files)`` and ``clips`` ``(resamples, n_clips)``
    (:func:`redraws`; the arguments as :func:`miss_intervals`'s). Several models scored on the
    same audio take the same redraws, so that a figure over models can be redrawn too."""
    peaks = np.asarray(peaks, dtype=np.float64)
    seconds = np.asarray(file_seconds, dtype=np.float64)
    fa = (files @ np.asarray(file_counts, dtype=np.float64)) / (files @ seconds / 3600)[:, None]
    below = peaks[:, None] < np.asarray(thresholds)[None, :]  # (n_clips, n_thr): missed there
    misses = (clips @ below) / len(peaks)  # (resamples, n_thr)
    curves = [Det(thresholds, fa[r][:, None], misses[r][:, None]) for r in range(len(fa))]
    return np.array([[curve.operating_point(0, b)[1] for b in budgets] for curve in curves])

def redraws(rng: np.random.Generator, n: int, speakers: Sequence[str] | None,
            resamples: int) -> np.ndarray:
    """``(resamples, n)``: how often each of ``n`` items is drawn in each redraw, when the
    items' speakers are drawn with replacement (as many draws as speakers) and a drawn speaker
    brings all of its items."""
    if speakers is None:
        speakers = np.arange(n)
    if len(speakers) != n:
        raise ValueError(f"{len(speakers)} speaker labels for {n} items: one per item")
    names, of = np.unique(np.asarray(speakers), return_inverse=True)
    drawn = rng.multinomial(len(names), np.full(len(names), 1 / len(names)), resamples)
    return drawn[:, of]
