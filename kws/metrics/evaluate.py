"""Accuracy evaluation of any scorer: miss rate at false alarms per hour, delay, confusions.

A scorer is a function ``(n_samples,) float32 audio -> (steps, K) scores`` that starts from a fresh
stream state on every call (a checkpoint, an ONNX model, another engine). :func:`evaluate` runs it
over positive clips mixed with noise at a chosen SNR and over long negative recordings, reads its
scores with a decision rule (:mod:`kws.core.decision`: smoothing, holding, refractory period,
re-arming), sweeps the threshold and returns a JSON-ready report: each miss rate at a
false-alarm target comes with its 95% bootstrap interval, speakers redrawn
(:mod:`kws.metrics.interval`). Torch-free.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from kws.core import mixing
from kws.core.audio import speech_bounds
from kws.core.decision import DecisionRule, decision_track, events, level
from kws.core.timing import Timing
from kws.data.corpora import speaker_of
from kws.metrics.det import (
    Det,
    default_thresholds,
    det_from_counts,
    file_event_counts,
    stream_counts,
    summarize_delays,
)
from kws.metrics.scores import Scores

log = logging.getLogger(__name__)

Scorer = Callable[[np.ndarray], np.ndarray]
FA_TARGETS = (0.1, 0.5, 1.0)
PAD_BEFORE_S, PAD_AFTER_S = 0.5, 1.0  # silence (then noise) around each positive clip
WINDOW_AFTER_S = 1.0  # a keyword counts as detected up to this long after its end
VAL_SNR_DB = 10.0  # validation positives (training and export calibration) are mixed at this SNR


@dataclass(frozen=True)
class PositiveClip:
    """A keyword clip ready for scoring: padded, mixed with noise; bounds from the clean clip."""

    path: str
    keyword: int
    wave: np.ndarray
    start_s: float
    end_s: float


def prepare_positives(positives: dict[str, list[tuple[Path, np.ndarray]]],
                      keywords: tuple[str, ...], noise: list[np.ndarray], snr_db: float | None,
                      seed: int = 0, sample_rate: int = 16000) -> list[PositiveClip]:
    """Pad each clip with silence, find its voiced part, then mix in noise at ``snr_db``
    (loudest-frame energy, as the Picovoice benchmark; no noise when ``snr_db`` is None)."""
    rng = np.random.default_rng(seed)
    before, after = int(PAD_BEFORE_S * sample_rate), int(PAD_AFTER_S * sample_rate)
    out = []
    for k, kw in enumerate(keywords):
        for path, wave in positives.get(kw, []):
            clean = np.concatenate([np.zeros(before, np.float32), wave,
                                    np.zeros(after, np.float32)])
            start, end = speech_bounds(wave, sample_rate)
            mixed = clean
            if noise and snr_db is not None:
                src = noise[int(rng.integers(len(noise)))]
                mixed = mixing.mix_at_snr(clean, mixing.fit_length(src, len(clean), rng),
                                          snr_db, method="peak")
            out.append(PositiveClip(str(path), k, mixed, start + PAD_BEFORE_S,
                                    end + PAD_BEFORE_S))
    return out


def decided(scorer: Scorer, rule: DecisionRule) -> Scorer:
    """``scorer`` followed by the rule's smoothing and holding: audio -> ``(steps, K)`` float64
    decision track, NaN read as 0 (a NaN score never fires)."""
    def score(wave: np.ndarray) -> np.ndarray:
        track = decision_track(scorer(wave), rule.smoothing_steps, rule.min_steps)
        return np.nan_to_num(track, nan=0.0)
    return score


def evaluate(scorer: Scorer, timing: Timing, keywords: tuple[str, ...],
             positives: list[PositiveClip], negatives: list[tuple[Path, np.ndarray]],
             rule: DecisionRule = DecisionRule(), targets: tuple[float, ...] = FA_TARGETS,
             sample_rate: int = 16000, progress: Callable[[Iterable], Iterable] = iter,
             intervals: bool = True) -> tuple[dict, Det, Scores]:
    """Score everything, read the scores with ``rule`` (its thresholds are swept, not used) and
    build the report; with ``intervals``, each miss rate's 95% interval as ``miss_rate_95``
    (about 0.4 s per keyword on 1,000 negative files; training's validation, every epoch, goes
    without).

    Returns:
        (report, det, scores): ``report`` is JSON-ready (see :mod:`kws.eval.report`); ``det``
        the curve; ``scores`` what both are computed from (:class:`kws.metrics.scores.Scores`).
    """
    if not negatives:
        raise ValueError("evaluation needs negative audio to count false alarms")
    refractory = rule.refractory_steps(timing.step_s)
    scorer = decided(scorer, rule)
    k = len(keywords)
    clip_tracks = [scorer(c.wave) for c in progress(positives)]
    windows = []
    for clip, track in zip(positives, clip_tracks):
        t = timing.step_times(len(track))
        windows.append((t >= clip.start_s) & (t <= clip.end_s + WINDOW_AFTER_S))
    peaks = np.array([[tr[w, j].max(initial=0.0) for j in range(k)]
                      for tr, w in zip(clip_tracks, windows)]).reshape(-1, k)
    labels = np.array([c.keyword for c in positives], dtype=int)
    started = time.process_time()
    neg_tracks = [scorer(w) for _, w in progress(negatives)]
    compute_s = time.process_time() - started
    seconds = np.array([len(w) for _, w in negatives]) / sample_rate
    hours = seconds.sum() / 3600
    grid = default_thresholds()
    per_file = file_event_counts(neg_tracks, grid, refractory)  # (files, n_thr, K)
    scores = Scores(keywords=np.array(keywords, dtype=str), peaks=peaks.astype(np.float64),
                    labels=labels.astype(np.int64),
                    clip_speakers=np.array([speaker_of(Path(c.path)) for c in positives], str),
                    files=np.array([str(p) for p, _ in negatives], str), file_seconds=seconds,
                    file_speakers=np.array([speaker_of(Path(p)) for p, _ in negatives], str),
                    file_counts=per_file, thresholds=grid)
    det = det_from_counts([peaks[labels == j, j] for j in range(k)],
                          per_file.sum(axis=0, dtype=np.int64), hours, grid)

    report: dict = {
        "event_rule": rule.describe(), "decision": rule.settings(), "step_s": timing.step_s,
        "negative_hours": hours, "negative_files": len(negatives),
        "real_time_factor": compute_s / (hours * 3600),
        "positive_clips": {kw: int((labels == j).sum()) for j, kw in enumerate(keywords)},
        "keywords": {}, "confusion": {}, "false_alarms": [],
    }
    for j, kw in enumerate(keywords):
        points = operating_points(det, j, targets)
        if intervals:
            for point, span in zip(points.values(), scores.intervals(j, targets)):
                point["miss_rate_95"] = None if span is None else list(span)
        thr = points.get("0.5", next(iter(points.values())))["threshold"]
        delays = []
        for clip, track, w in zip(positives, clip_tracks, windows):
            hit = np.flatnonzero(w & (track[:, j] >= level(thr)))
            if clip.keyword == j and len(hit):
                delays.append(float(timing.step_times(len(track))[hit[0]] - clip.end_s))
        report["keywords"][kw] = {"at_fa_per_hour": points, "delay_s": summarize_delays(delays),
                                  "operating_threshold": thr}
    thresholds = np.array([level(report["keywords"][kw]["operating_threshold"])
                           for kw in keywords])
    for j, kw in enumerate(keywords):
        fired = peaks[labels == j] >= thresholds[None, :]
        report["confusion"][kw] = {other: int(fired[:, i].sum())
                                   for i, other in enumerate(keywords)}
        report["confusion"][kw]["missed"] = int((~fired[:, j]).sum())
    # the listening list uses the most permissive target's thresholds, so that it is not empty
    # by construction; the report says which thresholds these are
    loosest = f"{max(targets):g}"
    listen_at = np.array([report["keywords"][kw]["at_fa_per_hour"][loosest]["threshold"]
                          for kw in keywords])
    report["false_alarms_at"] = {"fa_per_hour_target": float(loosest),
                                 "thresholds": dict(zip(keywords, listen_at.tolist()))}
    for (path, _), track in zip(negatives, neg_tracks):
        times = timing.step_times(len(track))
        for j, kw in enumerate(keywords):
            for step in events(track[:, j], listen_at[j], refractory):
                report["false_alarms"].append({"file": str(path), "time_s": round(float(
                    times[step]), 2), "keyword": kw, "score": float(track[step, j])})
    return report, det, scores


def operating_points(det: Det, k: int, targets: Iterable[float]) -> dict[str, dict]:
    """Per false-alarm target: the threshold, its false alarms per hour and miss rate."""
    points = {}
    for target in targets:
        thr, miss, fa = det.operating_point(k, target)
        points[f"{target:g}"] = {"threshold": thr, "fa_per_hour": fa,
                                 "miss_rate": miss if np.isfinite(miss) else None}
    return points


def evaluate_stream(scorer: Scorer, timing: Timing, keyword: str, k: int, name: str,
                    wave: np.ndarray, labels: list[tuple[float, float]],
                    rule: DecisionRule = DecisionRule(), targets: tuple[float, ...] = FA_TARGETS,
                    sample_rate: int = 16000) -> tuple[dict, Det]:
    """Evaluate keyword column ``k`` on one long stream with a label file (Picovoice format).

    False alarms per hour are counted over the stream time outside the labelled keywords.
    """
    if not labels:
        raise ValueError(f"{name}: the label file lists no keyword")
    refractory = rule.refractory_steps(timing.step_s)
    started = time.process_time()
    track = decided(scorer, rule)(wave)[:, k]
    compute_s = time.process_time() - started
    times = timing.step_times(len(track))
    thresholds = default_thresholds()
    hits, false = stream_counts(track, times, labels, thresholds, refractory, WINDOW_AFTER_S)
    hours = (len(wave) / sample_rate - sum(e - s for s, e in labels)) / 3600
    det = Det(thresholds, (false / hours)[:, None], (1 - hits / len(labels))[:, None])
    points = operating_points(det, 0, targets)
    thr = points.get("0.5", next(iter(points.values())))["threshold"]
    delays = []
    for start, end in labels:
        inside = np.flatnonzero((times >= start) & (times <= end + WINDOW_AFTER_S)
                                & (track >= level(thr)))
        if len(inside):
            delays.append(float(times[inside[0]] - end))
    loosest = points[f"{max(targets):g}"]["threshold"]
    report = {
        "event_rule": rule.describe(), "decision": rule.settings(), "step_s": timing.step_s,
        "negative_hours": hours, "negative_files": 1, "positive_clips": {keyword: len(labels)},
        "real_time_factor": compute_s / (len(wave) / sample_rate),
        "stream": name,
        "keywords": {keyword: {"at_fa_per_hour": points, "delay_s": summarize_delays(delays),
                               "operating_threshold": thr}},
        "false_alarms_at": {"fa_per_hour_target": max(targets), "thresholds": {keyword: loosest}},
        "false_alarms": [{"file": name, "time_s": round(float(times[step]), 2), "keyword": keyword,
                          "score": float(track[step])}
                         for step in events(track, loosest, refractory)
                         if not any(s <= times[step] <= e + WINDOW_AFTER_S for s, e in labels)],
        "confusion": {},
    }
    return report, det


def miss_at(report: dict, target: float = 0.5) -> float:
    """Mean over keywords of the miss rate at ``target`` false alarms per hour."""
    values = [v["at_fa_per_hour"][f"{target:g}"]["miss_rate"] for v in report["keywords"].values()]
    return float(np.mean([v for v in values if v is not None]))
