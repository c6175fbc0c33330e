"""The decision rule: the one definition of how per-step keyword scores become events.

Per keyword and model step ``i`` (scores are the model's float32 outputs, arithmetic in float64):

1. smoothing: ``s_i = (x_{i-S+1} + ... + x_i) / S`` over ``smoothing_steps`` S, summed oldest
   first, scores before the stream start counting as 0;
2. holding: ``d_i = min(s_{i-M+1}, ..., s_i)`` over ``min_steps`` M (0 before the start): the
   smoothed score must reach the threshold M steps in a row;
3. an event at step ``i`` when ``d_i >= threshold`` (the threshold rounded to float32, as the
   firmware stores it), the keyword is armed, and at least ``refractory`` steps have passed since
   the keyword was last heard: the last step of the run of steps at or above the threshold that
   gave its previous event. The event disarms the keyword; the first step below the threshold
   re-arms it. So a score held high gives one event, and the refractory period counts from when
   the score falls, not from when it rose.

A NaN score never reaches a threshold. :class:`RuleState` applies the rule to a stream block by
block (the runtime detector), :func:`events` and :func:`decision_track` to whole tracks (metrics,
export calibration), and the firmware C (``kws_decide`` in ``firmware_bridge/templates/kws.c``)
step by step; tests hold them to identical events.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Mapping, Sequence

import numpy as np

from kws.core.checks import check, integer, number

REFRACTORY_S = 2.0  # the default refractory period, seconds
MAX_STEPS = 50  # largest smoothing or holding window, steps
NO_EVENT = -(10 ** 9)  # "last event" step before any event


@dataclass(frozen=True)
class DecisionRule:
    """Everything that turns per-step scores into events (see the module docstring).

    It is the ``[decision]`` section of a run config (without thresholds: export calibrates
    them) and, with thresholds, what a model's manifest records and every consumer applies.

    Attributes:
        thresholds: keyword -> threshold in (0, 1].
        smoothing_steps: moving average of the score over this many steps (1 = none).
        min_steps: the smoothed score must be at or above the threshold this many steps in a row.
        refractory_s: seconds after the keyword was last heard (the end of the run of steps
            at or above the threshold that gave its last event) before it can fire again.
    """

    thresholds: Mapping[str, float] = field(default_factory=dict)
    smoothing_steps: int = 1
    min_steps: int = 1
    refractory_s: float = REFRACTORY_S

    def __post_init__(self) -> None:
        check(isinstance(self.thresholds, Mapping), "decision.thresholds", self.thresholds,
              "a table of keyword = threshold")
        object.__setattr__(self, "thresholds", dict(self.thresholds))
        for kw, t in self.thresholds.items():
            number(f"threshold for {kw!r}", t, allowed="a number with 0 < threshold <= 1")
            check(0 < t <= 1, f"threshold for {kw!r}", t, "a number with 0 < threshold <= 1")
        integer("decision.smoothing_steps", self.smoothing_steps, 1, MAX_STEPS)
        integer("decision.min_steps", self.min_steps, 1, MAX_STEPS)
        number("decision.refractory_s", self.refractory_s, 0, 3600)

    def settings(self) -> dict[str, float]:
        """The rule without its thresholds, as the manifest's ``"decision"`` records it."""
        return {"smoothing_steps": self.smoothing_steps, "min_steps": self.min_steps,
                "refractory_s": self.refractory_s}

    def overridden(self, **given: object) -> "DecisionRule":
        """This rule with the fields given (those given as None keep this rule's value)."""
        return dataclasses.replace(self, **{k: v for k, v in given.items() if v is not None})

    def refractory_steps(self, step_s: float) -> int:
        """The refractory period in model steps of ``step_s`` seconds (at least 1)."""
        return max(1, int(round(self.refractory_s / step_s)))

    def levels(self, keywords: Sequence[str]) -> np.ndarray:
        """``(K,)`` float64 thresholds of ``keywords`` as compared (float32-rounded)."""
        missing = [kw for kw in keywords if kw not in self.thresholds]
        if missing:
            raise ValueError(f"the decision rule has no threshold for {missing}")
        return np.array([level(self.thresholds[kw]) for kw in keywords])

    def describe(self) -> str:
        """The rule in words, for reports."""
        text = ("raw scores" if self.smoothing_steps == 1
                else f"scores averaged over {self.smoothing_steps} steps")
        if self.min_steps > 1:
            text += f", at the threshold for {self.min_steps} steps in a row"
        return f"{text}; refractory {self.refractory_s:g} s; re-armed below the threshold"


def level(threshold: float) -> np.float64:
    """A threshold as every implementation compares it: rounded to float32, then float64."""
    return np.float64(np.float32(threshold))


def smooth(scores: np.ndarray, steps: int, history: np.ndarray | None = None) -> np.ndarray:
    """Moving average over ``steps`` steps, summed oldest first in float64.

    Args:
        scores: ``(n, K)`` scores.
        history: ``(steps - 1, K)`` the scores before these (zeros at the stream start).

    Returns:
        ``(n, K)`` float64.
    """
    x = np.asarray(scores, dtype=np.float64)
    if steps == 1:
        return x
    if history is None:
        history = np.zeros((steps - 1, x.shape[1]))
    padded = np.concatenate([history, x])
    total = np.zeros_like(x)
    for j in range(steps):
        total += padded[j:j + len(x)]
    return total / steps


def hold(smoothed: np.ndarray, steps: int, history: np.ndarray | None = None) -> np.ndarray:
    """Minimum over the last ``steps`` smoothed values (``history``: the ``steps - 1`` before,
    zeros at the stream start); ``(n, K)`` float64 (``n`` may be 0: a block or clip that
    completed no model step)."""
    if steps == 1 or len(smoothed) == 0:
        return smoothed
    if history is None:
        history = np.zeros((steps - 1, smoothed.shape[1]))
    padded = np.concatenate([history, smoothed])
    return np.lib.stride_tricks.sliding_window_view(padded, steps, axis=0).min(axis=-1)


def decision_track(scores: np.ndarray, smoothing_steps: int = 1, min_steps: int = 1
                   ) -> np.ndarray:
    """The ``(steps, K)`` float64 values the thresholds are compared with, for a whole track
    from the stream start (steps 1 and 2 of the rule)."""
    integer("smoothing_steps", smoothing_steps, 1, MAX_STEPS)
    integer("min_steps", min_steps, 1, MAX_STEPS)
    scores = np.asarray(scores, dtype=np.float64)
    return hold(smooth(scores, smoothing_steps), min_steps)


def find_events(track: np.ndarray, threshold_level: float, refractory: int,
                last: int = NO_EVENT, armed: bool = True) -> tuple[list[int], int, bool]:
    """Step 3 of the rule on one keyword's ``(n,)`` decision track.

    Args:
        threshold_level: the threshold as :func:`level` gives it.
        refractory: steps (>= 1).
        last: the last step of the run that gave the previous event, relative to ``track[0]``
            (negative: before it).
        armed: whether the keyword was armed before ``track[0]``.

    Returns:
        (event steps relative to ``track[0]``, the new ``last``, the new ``armed``).
    """
    if refractory < 1:
        raise ValueError(f"refractory must be >= 1 step, got {refractory}")
    n = len(track)
    above = np.flatnonzero(np.asarray(track) >= threshold_level)  # NaN is never above
    if len(above) == 0:
        return [], last, armed if n == 0 else True
    new_run = np.ones(len(above), dtype=bool)
    new_run[1:] = np.diff(above) > 1
    starts = above[new_run]
    ends = np.append(above[np.flatnonzero(new_run)[1:] - 1], above[-1])
    first_armed = armed or starts[0] > 0  # a step below the threshold before the first run
    if (first_armed and starts[0] - last >= refractory
            and np.all(starts[1:] - ends[:-1] >= refractory)):
        found = starts.tolist()  # the usual case: every run fires at its start
        last, armed = int(ends[-1]), False
    else:
        found = []
        for r, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
            armed = armed or r > 0 or a > 0  # runs after the first follow a step below
            if not armed:
                last = b  # the run that fired goes on: the keyword is still heard
            elif max(a, last + refractory) <= b:
                found.append(max(a, last + refractory))
                last, armed = b, False
    return found, last, armed or ends[-1] < n - 1


def events(track: np.ndarray, threshold: float, refractory: int) -> np.ndarray:
    """Event steps of a whole ``(steps,)`` decision track from the stream start."""
    return np.asarray(find_events(track, level(threshold), refractory)[0], dtype=np.int64)


BUDGET_CONFIDENCE = 0.9  # a budget is claimed where the calibration audio shows it at this level
NORMAL_ABOVE = 1e4  # expected false alarms above which the Poisson count is taken as normal


def allowed_false_alarms(budget: float, hours: float,
                         confidence: float = BUDGET_CONFIDENCE) -> int | None:
    """The most false alarms ``hours`` of calibration audio may give at a threshold for the
    threshold to meet ``budget`` (false alarms per hour) at ``confidence``: the largest count
    ``c`` with ``P(N <= c) <= 1 - confidence`` for ``N ~ Poisson(budget * hours)``, so that a
    rate as high as the budget would give that few at most 10% of the time (at 0.9), i.e. the
    budget is at least the one-sided upper confidence bound of the rate. None when even no
    false alarm is that unlikely: the audio cannot show the budget
    (``budget < budget_resolution(hours)``)."""
    mean = budget * hours
    if mean > NORMAL_ABOVE:  # the normal approximation, so a huge mean costs no memory
        z = NormalDist().inv_cdf(1 - confidence)
        return int(np.floor(mean + z * np.sqrt(mean) - 0.5))
    counts = np.arange(int(mean + 10 * np.sqrt(mean) + 10))
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(counts[1:]))])
    log_p = counts * np.log(max(mean, 1e-300)) - mean - log_factorial
    below = np.flatnonzero(np.cumsum(np.exp(log_p)) <= 1 - confidence)
    return int(below[-1]) if len(below) else None


def budget_resolution(hours: float, confidence: float = BUDGET_CONFIDENCE) -> float:
    """The smallest budget (false alarms per hour) ``hours`` of calibration audio can show at
    ``confidence``: the upper confidence bound of the rate when it gave no false alarm,
    ``-ln(1 - confidence) / hours`` (2.3 false alarms in ``hours`` at 0.9)."""
    return -np.log(1 - confidence) / hours


def budget_index(fa_per_hour: Sequence[float], budget: float,
                 hours: float | None = None) -> int | None:
    """In a calibration table sorted by increasing threshold: the index of the lowest threshold
    from which every higher threshold, too, gives at most ``budget`` false alarms per hour
    (None when even the highest does not).

    With ``hours`` (the calibration audio's length) the budget must hold at
    ``BUDGET_CONFIDENCE``: a threshold qualifies when its count of false alarms on the
    calibration audio is at most :func:`allowed_false_alarms`, so that the budget holds on audio
    it was not calibrated on. A budget finer than :func:`budget_resolution` then has no
    qualifying threshold (None)."""
    rates = np.asarray(fa_per_hour, dtype=np.float64)
    if hours is None:
        over = np.flatnonzero(rates > budget * (1 + 1e-9))
    else:
        allowed = allowed_false_alarms(budget, hours)
        if allowed is None:
            return None
        over = np.flatnonzero(np.round(rates * hours) > allowed)
    first = int(over[-1]) + 1 if len(over) else 0
    return first if first < len(fa_per_hour) else None


class RuleState:
    """The rule applied to one stream block by block; the blocks' events equal the rule's on
    the whole track, whatever the block sizes.

    Args:
        rule: the rule (with a threshold per keyword).
        keywords: score columns, in order.
        step_s: seconds per model step (for the refractory period).
    """

    def __init__(self, rule: DecisionRule, keywords: Sequence[str], step_s: float) -> None:
        self.rule = rule
        self.levels = rule.levels(keywords)
        self.refractory = rule.refractory_steps(step_s)
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        k, rule = len(self.levels), self.rule
        self._scores = np.zeros((rule.smoothing_steps - 1, k))
        self._smoothed = np.zeros((rule.min_steps - 1, k))
        self._last = [NO_EVENT] * k
        self._armed = [True] * k
        self.steps = 0

    def update(self, scores: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Consume the next ``(n, K)`` scores.

        Returns:
            (smoothed ``(n, K)`` float64, events as (stream step, keyword index) in step order).
        """
        rule, first = self.rule, self.steps
        x = np.asarray(scores, dtype=np.float64)
        smoothed = smooth(x, rule.smoothing_steps, self._scores)
        track = hold(smoothed, rule.min_steps, self._smoothed)
        if rule.smoothing_steps > 1:
            self._scores = np.concatenate([self._scores, x])[len(x):]
        if rule.min_steps > 1:
            self._smoothed = np.concatenate([self._smoothed, smoothed])[len(x):]
        found = []
        for k, threshold_level in enumerate(self.levels):
            steps, last, self._armed[k] = find_events(track[:, k], threshold_level,
                                                      self.refractory, self._last[k] - first,
                                                      self._armed[k])
            self._last[k] = last + first
            found += [(first + s, k) for s in steps]
        self.steps += len(x)
        return smoothed, sorted(found)
