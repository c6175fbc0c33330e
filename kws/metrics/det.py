"""Detection metrics on score tracks: false alarms per hour, miss rate, DET curve, delay.

Events are those of the decision rule (:mod:`kws.core.decision`), the same for every engine and
every report; the tracks given here are decision tracks (smoothing and holding already applied,
:func:`kws.core.decision.decision_track`). Pure numpy, no torch: used by training validation,
export calibration and ``kws eval`` alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kws.core.decision import budget_index, events


def default_thresholds() -> np.ndarray:
    """Threshold grid: 0.005 .. 0.8 in steps of 0.005, then 0.801 .. 0.999 in steps of 0.001
    (operating points at low false-alarm rates sit there), then 1 - 10^(-3.1) .. 1 - 10^(-5) in
    tenths of a decade: an ensemble's averaged probabilities crowd just below 1, where a step of
    0.001 would leave the lowest false-alarm budgets with nothing between 0.999 and 1."""
    coarse = np.round(np.arange(1, 161) * 0.005, 4)
    fine = np.round(0.8 + np.arange(1, 200) * 0.001, 4)
    top = np.round(1.0 - 10.0 ** -(3.0 + np.arange(1, 21) / 10), 8)
    return np.concatenate([coarse, fine, top])


def file_event_counts(tracks: list[np.ndarray], thresholds: np.ndarray,
                      refractory: int) -> np.ndarray:
    """Events per recording, threshold and keyword of ``(steps, K)`` tracks:
    ``(n_tracks, n_thr, K)`` int32 (what :mod:`kws.metrics.interval` resamples)."""
    k = tracks[0].shape[1] if tracks else 0
    counts = np.zeros((len(tracks), len(thresholds), k), dtype=np.int32)
    for i, track in enumerate(tracks):
        for j in range(k):
            col = track[:, j]
            peak = col.max(initial=-np.inf)
            for t, thr in enumerate(thresholds):
                if thr > peak:
                    break
                counts[i, t, j] = len(events(col, thr, refractory))
    return counts


def count_events(tracks: list[np.ndarray], thresholds: np.ndarray, refractory: int) -> np.ndarray:
    """Events per threshold and keyword summed over ``(steps, K)`` tracks: ``(n_thr, K)``."""
    if not tracks:
        return np.zeros((len(thresholds), 0), dtype=np.int64)
    return file_event_counts(tracks, thresholds, refractory).sum(axis=0, dtype=np.int64)


@dataclass(frozen=True)
class Det:
    """A detection-error-tradeoff curve per keyword.

    Attributes:
        thresholds: ``(n,)`` increasing.
        fa_per_hour: ``(n, K)`` false alarms per hour of negative audio.
        miss_rate: ``(n, K)`` share of positive clips without an event, in [0, 1].
    """

    thresholds: np.ndarray
    fa_per_hour: np.ndarray
    miss_rate: np.ndarray

    def operating_point(self, k: int, max_fa_per_hour: float) -> tuple[float, float, float]:
        """(threshold, miss rate, FA/h) at the budget's threshold
        (:func:`kws.core.decision.budget_index`).

        Returns the highest threshold (FA/h may still exceed the target) when none qualifies.
        """
        i = budget_index(self.fa_per_hour[:, k], max_fa_per_hour)
        i = len(self.thresholds) - 1 if i is None else i
        return (float(self.thresholds[i]), float(self.miss_rate[i, k]),
                float(self.fa_per_hour[i, k]))


def miss_rates(peaks: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Share of clips whose peak score (inside their keyword window) is below each threshold."""
    if len(peaks) == 0:
        return np.full(len(thresholds), np.nan)
    return (np.asarray(peaks)[None, :] < thresholds[:, None]).mean(axis=1)


def det_curve(positive_peaks: list[np.ndarray], negative_tracks: list[np.ndarray],
              negative_hours: float, refractory: int,
              thresholds: np.ndarray | None = None) -> Det:
    """Build a :class:`Det` from per-keyword positive peak scores and negative score tracks.

    Args:
        positive_peaks: for each keyword, ``(n_clips,)`` peak score of that keyword in each clip's
            window.
        negative_tracks: ``(steps, K)`` score tracks of negative recordings.
        negative_hours: total duration of the negative recordings in hours (> 0).
        refractory: event refractory period in steps.
    """
    thr = default_thresholds() if thresholds is None else np.asarray(thresholds, dtype=float)
    return det_from_counts(positive_peaks, count_events(negative_tracks, thr, refractory),
                           negative_hours, thr)


def det_from_counts(positive_peaks: list[np.ndarray], counts: np.ndarray, negative_hours: float,
                    thresholds: np.ndarray) -> Det:
    """A :class:`Det` from per-keyword positive peaks and the negatives' ``(n_thr, K)`` event
    counts at ``thresholds`` over ``negative_hours`` (> 0)."""
    if negative_hours <= 0:
        raise ValueError(f"negative audio must last > 0 hours, got {negative_hours}")
    miss = np.stack([miss_rates(p, thresholds) for p in positive_peaks], axis=1)
    return Det(thresholds, counts / negative_hours, miss)


def summarize_delays(delays: list[float]) -> dict[str, float | None]:
    """Median and 95th percentile (seconds) of detection delays; None when there are none."""
    if not delays:
        return {"median": None, "p95": None, "count": 0}
    arr = np.asarray(delays)
    return {"median": float(np.median(arr)), "p95": float(np.percentile(arr, 95)),
            "count": len(delays)}


def stream_counts(track: np.ndarray, times: np.ndarray, labels: list[tuple[float, float]],
                  thresholds: np.ndarray, refractory: int, after_s: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Hits and false alarms per threshold on one long labelled stream.

    An event inside ``[start, end + after_s]`` of a label is a hit for that label (further events
    there are not counted at all); any other event is a false alarm.

    Returns:
        (hits ``(n_thr,)`` labels detected, false_alarms ``(n_thr,)``).
    """
    hits = np.zeros(len(thresholds), dtype=np.int64)
    false = np.zeros(len(thresholds), dtype=np.int64)
    spans = np.array(labels, dtype=float).reshape(-1, 2)
    for t, thr in enumerate(thresholds):
        found = set()
        for step in events(track, thr, refractory):
            inside = np.flatnonzero((spans[:, 0] <= times[step])
                                    & (times[step] <= spans[:, 1] + after_s))
            if len(inside):
                found.add(int(inside[0]))
            else:
                false[t] += 1
        hits[t] = len(found)
    return hits, false
