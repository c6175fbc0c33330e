"""Detection metrics on score tracks: events, false alarms per hour, miss rate, DET, delay.

Pure numpy, no torch: used by training validation, ``kws eval`` and the benchmark harness alike.

Event rule (the same for every engine and every report): an event for a keyword is the first step
whose score is >= the threshold once at least ``refractory`` steps have passed since that keyword's
previous event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

EVENT_RULE = ("event = first step with score >= threshold at least `refractory_s` after the "
              "previous event of the same keyword")


def default_thresholds() -> np.ndarray:
    """Threshold grid: 0.005 .. 0.8 in steps of 0.005, then 0.801 .. 0.999 in steps of 0.001
    (operating points at low false-alarm rates sit there), plus 0.9995 and 0.9999."""
    coarse = np.round(np.arange(1, 161) * 0.005, 4)
    fine = np.round(0.8 + np.arange(1, 200) * 0.001, 4)
    return np.concatenate([coarse, fine, [0.9995, 0.9999]])


def events(track: np.ndarray, threshold: float, refractory: int) -> np.ndarray:
    """Step indices of the events in a ``(steps,)`` score track (see the module's event rule)."""
    if refractory < 1:
        raise ValueError(f"refractory must be >= 1 step, got {refractory}")
    # compare in float64 whatever the types (a Python float would be compared in float32 with a
    # float32 track, a numpy float64 in float64: 0.9 would be both reached and not)
    above = np.flatnonzero(track >= np.float64(threshold))
    out = []
    i = 0
    while i < len(above):
        step = int(above[i])
        out.append(step)
        i = int(np.searchsorted(above, step + refractory, side="left"))
    return np.asarray(out, dtype=np.int64)


def decision_track(scores: np.ndarray, smoothing_steps: int = 1, min_steps: int = 1) -> np.ndarray:
    """The score track on which this module's event rule gives the streaming detector's events
    (:class:`kws.runtime.Detector` with these settings).

    Args:
        scores: ``(steps, K)`` raw scores from the start of a stream.
        smoothing_steps: moving average over this many steps (zeros before the stream).
        min_steps: then the minimum over this many steps (zeros before the stream): a step
            reaches the threshold only when the smoothed score did so on ``min_steps`` steps
            in a row.

    Returns:
        ``(steps, K)`` float64.
    """
    if smoothing_steps < 1 or min_steps < 1:
        raise ValueError(f"smoothing_steps={smoothing_steps}, min_steps={min_steps}; "
                         "allowed: >= 1")
    out = np.asarray(scores, dtype=np.float64)
    for width, reduce in ((smoothing_steps, np.mean), (min_steps, np.min)):
        if width > 1 and len(out):
            padded = np.concatenate([np.zeros((width - 1, out.shape[1])), out])
            windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=0)
            out = reduce(windows, axis=-1)
    return out


def decided(scorer: Callable[[np.ndarray], np.ndarray], smoothing_steps: int = 1,
            min_steps: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """``scorer`` (audio -> ``(steps, K)`` scores from a fresh stream) followed by
    :func:`decision_track`; ``scorer`` itself when both settings are 1."""
    decision_track(np.zeros((0, 1)), smoothing_steps, min_steps)  # check the settings now
    if smoothing_steps == min_steps == 1:
        return scorer
    return lambda wave: decision_track(scorer(wave), smoothing_steps, min_steps)


def count_events(tracks: list[np.ndarray], thresholds: np.ndarray, refractory: int) -> np.ndarray:
    """Events per threshold and keyword summed over ``(steps, K)`` tracks: ``(n_thr, K)``."""
    k = tracks[0].shape[1] if tracks else 0
    counts = np.zeros((len(thresholds), k), dtype=np.int64)
    for track in tracks:
        for j in range(k):
            col = track[:, j]
            peak = col.max(initial=-np.inf)
            for t, thr in enumerate(thresholds):
                if thr > peak:
                    break
                counts[t, j] += len(events(col, thr, refractory))
    return counts


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
        """(threshold, miss rate, FA/h) at the lowest threshold whose FA/h <= the target.

        Returns the highest threshold (FA/h may still exceed the target) when none qualifies.
        """
        ok = np.flatnonzero(self.fa_per_hour[:, k] <= max_fa_per_hour)
        i = int(ok[0]) if len(ok) else len(self.thresholds) - 1
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
    if negative_hours <= 0:
        raise ValueError(f"negative audio must last > 0 hours, got {negative_hours}")
    thr = default_thresholds() if thresholds is None else np.asarray(thresholds, dtype=float)
    fa = count_events(negative_tracks, thr, refractory) / negative_hours
    miss = np.stack([miss_rates(p, thr) for p in positive_peaks], axis=1)
    return Det(thr, fa, miss)


def step_end_seconds(step: np.ndarray | int, step_frames: int, hop_s: float,
                     window_s: float) -> np.ndarray:
    """Time (s from the stream start) at which a model step's score becomes available: the end of
    the last audio sample its last feature frame reads."""
    return ((np.asarray(step) + 1) * step_frames - 1) * hop_s + window_s


def summarize_delays(delays: list[float]) -> dict[str, float | None]:
    """Median and 95th percentile (seconds) of detection delays; None when there are none."""
    if not delays:
        return {"median": None, "p95": None, "count": 0}
    arr = np.asarray(delays)
    return {"median": float(np.median(arr)), "p95": float(np.percentile(arr, 95)),
            "count": len(delays)}


def parse_labels(path) -> list[tuple[float, float]]:
    """Keyword occurrences from a label file: one ``start, end`` line (seconds) per keyword, as
    in the Picovoice wake-word benchmark. Blank lines and ``#`` comments are skipped.

    Raises:
        ValueError: a malformed line, naming the file and line number.
    """
    out = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            parts = [p.strip() for p in text.replace("\t", ",").split(",")]
            try:
                start, end = (float(p) for p in parts)
            except ValueError:
                raise ValueError(f"{path}:{number}: expected 'start, end' in seconds, got "
                                 f"{line.strip()!r}") from None
            if not 0 <= start < end:
                raise ValueError(f"{path}:{number}: need 0 <= start < end, got {start}, {end}")
            out.append((start, end))
    return out


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
