"""Decisions on a stream: the rule of :mod:`kws.core.decision` applied to score blocks as they
come, with event times.

The detector never sees audio. It consumes ``(steps, K)`` score blocks in stream order and emits
:class:`Detection` events, exactly the events the rule gives on the whole track (and so exactly
what ``kws eval`` counts). Unless told otherwise, a detector made from a model applies the
model's own rule (the manifest's ``"decision"`` and ``"thresholds"``): the one its thresholds
were calibrated with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from kws.core.contract import Manifest
from kws.core.decision import (
    BUDGET_CONFIDENCE,
    DecisionRule,
    RuleState,
    budget_index,
    budget_resolution,
)
from kws.core.timing import Timing

log = logging.getLogger(__name__)


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


def budget_thresholds(manifest: Manifest, max_fa_per_hour: float) -> dict[str, float]:
    """Each keyword's threshold for a false-alarm budget, from the model's calibration table
    (:func:`table_budget`).

    Raises:
        ValueError: the budget is not > 0, or the model has no calibration table.
    """
    return table_budget(manifest.calibration, manifest.calibration_hours, manifest.keywords,
                        max_fa_per_hour)


def table_budget(table: Mapping[str, dict], hours: float | None, keywords: tuple[str, ...],
                 max_fa_per_hour: float) -> dict[str, float]:
    """Each keyword's threshold for a false-alarm budget, from a calibration table over
    ``hours`` of negative audio: the lowest threshold from which every higher one meets the
    budget at 90% confidence on the calibration audio (:func:`kws.core.decision.budget_index`),
    so that it holds on other audio. A budget the calibration audio is too short to show
    (below :func:`kws.core.decision.budget_resolution`) is warned about and gets the lowest
    threshold with no false alarm on it; one no threshold meets gets the highest, with a
    warning too.

    Raises:
        ValueError: the budget is not > 0, or the table lacks a keyword.
    """
    if not max_fa_per_hour > 0:
        raise ValueError(f"max_fa_per_hour is {max_fa_per_hour}; allowed: > 0")
    missing = [kw for kw in keywords if not table.get(kw)]
    if missing:
        raise ValueError(f"max_fa_per_hour needs a calibration table; the model has none for "
                         f"{missing}")
    if hours is None or max_fa_per_hour < budget_resolution(hours):
        resolution = "unknown" if hours is None else \
            f"{budget_resolution(hours):.3g} FA/h ({hours:.3g} h of audio)"
        log.warning("a false-alarm budget of %g per hour is finer than the calibration audio "
                    "can show at %g%% confidence (its resolution is %s): the thresholds gave no "
                    "false alarm on it, which does not show a rate as low as %g", max_fa_per_hour,
                    100 * BUDGET_CONFIDENCE, resolution, max_fa_per_hour)
    out = {}
    for kw in keywords:
        column = table[kw]
        i = budget_index(column["fa_per_hour"], max_fa_per_hour, hours)
        if i is None:
            i = budget_index(column["fa_per_hour"], 0.0)
        if i is None:
            i = len(column["threshold"]) - 1
            log.warning("%s: every calibrated threshold gave false alarms; using the highest, "
                        "%g (%.3g FA/h on the calibration audio)", kw, column["threshold"][i],
                        column["fa_per_hour"][i])
        out[kw] = float(column["threshold"][i])
    return out


def model_rule(manifest: Manifest, thresholds: Mapping[str, float] | None = None,
               max_fa_per_hour: float | None = None, smoothing_steps: int | None = None,
               min_steps: int | None = None, refractory_s: float | None = None) -> DecisionRule:
    """The model's own rule with what is given in its place: thresholds per keyword (those not
    named keep the model's, or the budget's when ``max_fa_per_hour`` is set), smoothing, holding
    and refractory period.

    Raises:
        ValueError: a threshold for a keyword the model does not have, or a value out of range.
    """
    own = manifest.rule
    chosen = chosen_thresholds(manifest.keywords, own.thresholds, manifest.calibration,
                               manifest.calibration_hours, thresholds, max_fa_per_hour)
    return own.overridden(thresholds=chosen, smoothing_steps=smoothing_steps,
                          min_steps=min_steps, refractory_s=refractory_s)


def chosen_thresholds(keywords: tuple[str, ...], defaults: Mapping[str, float],
                      table: Mapping[str, dict], hours: float | None,
                      thresholds: Mapping[str, float] | None = None,
                      max_fa_per_hour: float | None = None) -> dict[str, float]:
    """Per keyword: ``thresholds[kw]`` where given, else the budget's threshold from the
    calibration ``table`` over ``hours`` (:func:`table_budget`) when ``max_fa_per_hour`` is set,
    else ``defaults[kw]``.

    Raises:
        ValueError: a threshold for a keyword not in ``keywords``, or a bad budget.
    """
    unknown = sorted(set(thresholds or {}) - set(keywords))
    if unknown:
        raise ValueError(f"thresholds for unknown keyword(s) {unknown}; the model has "
                         f"{list(keywords)}")
    chosen = dict(defaults)
    if max_fa_per_hour is not None:
        chosen = table_budget(table, hours, keywords, max_fa_per_hour)
    chosen.update(thresholds or {})
    return chosen


class Detector:
    """Turns score blocks into :class:`Detection` events; see the module docstring.

    Args:
        keywords: names, in score-column order.
        rule: the decision rule, with a threshold for every keyword.
        timing: the model's step timing (for event times and the refractory period).
    """

    def __init__(self, keywords: tuple[str, ...], rule: DecisionRule,
                 timing: Timing = Timing(3)) -> None:
        self.keywords = tuple(keywords)
        self.rule, self.timing = rule, timing
        self._state = RuleState(rule, self.keywords, timing.step_s)
        self._half = self._state.levels * 0.5
        self.reset()

    @classmethod
    def from_manifest(cls, manifest: Manifest, rule: DecisionRule | None = None) -> "Detector":
        """A detector for a model: its own rule unless ``rule`` is given
        (see :func:`model_rule`)."""
        return cls(manifest.keywords, rule or manifest.rule,
                   Timing.of(manifest.frontend, manifest.step_frames))

    @property
    def steps(self) -> int:
        """Score steps consumed since the stream start."""
        return self._state.steps

    def reset(self) -> None:
        """Start a new stream."""
        self._state.reset()
        self._rising = np.full(len(self.keywords), -1, dtype=np.int64)  # run at/above half

    def process(self, scores: np.ndarray) -> list[Detection]:
        """Consume the next ``(n, K)`` scores of the stream; return the events they complete."""
        if len(scores) == 0:
            return []
        first = self._state.steps
        smoothed, found = self._state.update(scores)
        half = smoothed >= self._half
        out = []
        for step, k in found:
            below = np.flatnonzero(~half[:step - first + 1, k])
            start = first + int(below[-1]) + 1 if len(below) else (
                self._rising[k] if self._rising[k] >= 0 else first)
            out.append(Detection(self.keywords[k], float(smoothed[step - first, k]),
                                 self.timing.end_of(step), self.timing.end_of(start)))
        for k in range(len(self.keywords)):
            below = np.flatnonzero(~half[:, k])
            if not half[-1, k]:
                self._rising[k] = -1
            elif len(below):
                self._rising[k] = first + int(below[-1]) + 1
            elif self._rising[k] < 0:
                self._rising[k] = first
        return out
