"""Decisions on score tracks: smoothing, thresholds (or a false-alarm budget), refractory period.

The detector never sees audio. It consumes ``(steps, K)`` score blocks in stream order and emits
:class:`Detection` events. With ``smoothing_steps=1`` and ``min_steps=1`` it applies exactly the
event rule of :mod:`kws.metrics` used by ``kws eval``; with others, that rule on
:func:`kws.metrics.decision_track`. Unless told otherwise, a detector made from a model uses the
model's own rule (the manifest's ``"decision"``), the one its thresholds were calibrated with.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Optional

import numpy as np

from kws.metrics import step_end_seconds


@dataclass(frozen=True)
class Detection:
    """A keyword event.

    Attributes:
        keyword: the keyword's name.
        score: smoothed score at the decision step, in [0, 1].
        time_s: stream time (s) when the decision was possible: end of the deciding step's audio.
        start_s: stream time (s) when the score began to rise: end of the first step of the run
            of steps at or above half the threshold that led to this event.
    """

    keyword: str
    score: float
    time_s: float
    start_s: float


@dataclass(frozen=True)
class DetectorConfig:
    """Decision settings.

    Attributes:
        thresholds: keyword -> score threshold; keywords not named use the manifest's default.
        max_fa_per_hour: instead of thresholds, the false-alarm budget; each keyword's threshold is
            the lowest one in the model's calibration table whose false alarms per hour are
            within it.
        refractory_s: no second event of the same keyword within this time.
        smoothing_steps: moving average over this many steps (1 = none; None = the model's
            rule, see :meth:`Detector.from_manifest`, else 1).
        min_steps: the smoothed score must stay at or above the threshold this many consecutive
            steps (None: as ``smoothing_steps``).
    """

    thresholds: Mapping[str, float] = field(default_factory=dict)
    max_fa_per_hour: Optional[float] = None
    refractory_s: float = 2.0
    smoothing_steps: int | None = None
    min_steps: int | None = None

    def __post_init__(self) -> None:
        for kw, t in self.thresholds.items():
            if not 0 < t <= 1:
                raise ValueError(f"threshold for {kw!r} is {t}; allowed: 0 < threshold <= 1")
        if self.max_fa_per_hour is not None and self.max_fa_per_hour <= 0:
            raise ValueError(f"max_fa_per_hour is {self.max_fa_per_hour}; allowed: > 0")
        if self.refractory_s < 0:
            raise ValueError(f"refractory_s is {self.refractory_s}; allowed: >= 0")
        for name in ("smoothing_steps", "min_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}={value}; allowed: >= 1, or None for the model's rule")


def threshold_for_budget(table: Mapping[str, list], max_fa_per_hour: float) -> float:
    """Lowest calibrated threshold whose false alarms per hour are <= the budget (the highest
    calibrated threshold when none is). ``table``: columns "threshold" and "fa_per_hour"."""
    pairs = list(zip(table["threshold"], table["fa_per_hour"]))
    ok = [t for t, fa in pairs if fa <= max_fa_per_hour]
    return float(min(ok)) if ok else float(max(t for t, _ in pairs))


class Detector:
    """Turns score blocks into :class:`Detection` events; see the module docstring.

    Args:
        keywords: names, in score-column order.
        thresholds: one per keyword.
        step_frames, hop_s, window_s: the model's step timing (for event times).
    """

    def __init__(self, keywords: tuple[str, ...], thresholds: Mapping[str, float],
                 cfg: DetectorConfig = DetectorConfig(), step_frames: int = 3,
                 hop_s: float = 0.010, window_s: float = 0.025) -> None:
        self.keywords = tuple(keywords)
        self.cfg = replace(cfg, smoothing_steps=cfg.smoothing_steps or 1,
                           min_steps=cfg.min_steps or 1)
        # float64, like kws.metrics: the same score meets the same threshold in eval and here
        self.thresholds = np.array([thresholds[kw] for kw in self.keywords], dtype=np.float64)
        self._timing = (step_frames, hop_s, window_s)
        step_s = step_frames * hop_s
        self._refractory = int(round(cfg.refractory_s / step_s))
        self.reset()

    @classmethod
    def from_manifest(cls, manifest, cfg: DetectorConfig = DetectorConfig()) -> "Detector":
        """Thresholds from ``cfg`` (explicit, or a false-alarm budget via the manifest's
        calibration table) falling back to the manifest's defaults; smoothing and min_steps
        from ``cfg`` where set, else the manifest's decision rule."""
        rule = manifest.decision
        cfg = replace(cfg, smoothing_steps=cfg.smoothing_steps or rule.smoothing_steps,
                      min_steps=cfg.min_steps or rule.min_steps)
        thresholds = dict(manifest.thresholds)
        if cfg.max_fa_per_hour is not None:
            table = manifest.calibration
            missing = [kw for kw in manifest.keywords if not table.get(kw)]
            if missing:
                raise ValueError(f"max_fa_per_hour needs a calibration table; the model has none "
                                 f"for {missing}")
            thresholds = {kw: threshold_for_budget(table[kw], cfg.max_fa_per_hour)
                          for kw in manifest.keywords}
        unknown = sorted(set(cfg.thresholds) - set(manifest.keywords))
        if unknown:
            raise ValueError(f"thresholds for unknown keyword(s) {unknown}; the model has "
                             f"{list(manifest.keywords)}")
        thresholds.update(cfg.thresholds)
        fe = manifest.frontend
        return cls(manifest.keywords, thresholds, cfg, manifest.step_frames, fe.hop_ms / 1000,
                   fe.window_ms / 1000)

    def reset(self) -> None:
        k = len(self.keywords)
        self._history = np.zeros((self.cfg.smoothing_steps - 1, k), dtype=np.float32)
        self._above = np.zeros(k, dtype=np.int64)  # consecutive steps at/above threshold
        self._rising = np.full(k, -1, dtype=np.int64)  # first step at/above half threshold
        self._last = np.full(k, -(10 ** 9), dtype=np.int64)  # step of the last event

    def process(self, scores: np.ndarray, first_step: int) -> list[Detection]:
        """Consume ``(n, K)`` scores whose first row is stream step ``first_step``."""
        if len(scores) == 0:
            return []
        window = self.cfg.smoothing_steps
        if window > 1:
            padded = np.concatenate((self._history, scores))
            cumulative = np.cumsum(np.vstack([np.zeros((1, padded.shape[1])), padded]), axis=0)
            smooth = (cumulative[window:] - cumulative[:-window]) / window
            self._history = padded[len(padded) - (window - 1):]
        else:
            smooth = scores
        if (self._rising < 0).all() and (smooth < self.thresholds * 0.5).all():
            # the usual case on a live microphone: nothing near any threshold
            self._above[:] = 0
            return []
        out = []
        for i, row in enumerate(smooth):
            step = first_step + i
            for k in np.flatnonzero((row >= self.thresholds * 0.5) | (self._rising >= 0)):
                if row[k] < self.thresholds[k] * 0.5:
                    self._rising[k] = -1
                elif self._rising[k] < 0:
                    self._rising[k] = step
            hot = row >= self.thresholds
            self._above = np.where(hot, self._above + 1, 0)
            for k in np.flatnonzero(hot & (self._above >= self.cfg.min_steps)):
                if step - self._last[k] < max(self._refractory, 1):
                    continue
                self._last[k] = step
                start = self._rising[k] if self._rising[k] >= 0 else step
                out.append(Detection(self.keywords[k], float(row[k]), self.time_of(step),
                                     self.time_of(start)))
        return out

    def time_of(self, step: int) -> float:
        return float(round(step_end_seconds(step, *self._timing), 4))
