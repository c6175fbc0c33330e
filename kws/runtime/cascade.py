"""Two stages: the small model's events are checked by a verifier before they are reported.

The first stage (the keyword model a microcontroller runs too) reads its scores with its own rule
at lower "gate" thresholds and a refractory period of one step, so it misses fewer keywords and
fires more often (a rejected event must not silence the keyword said again right after it). A
verifier, a larger speech-embedding model (:mod:`kws.features.embedding`), checks each of those
events and runs only then: it scores the ``window_s`` seconds of audio that end ``delay_s`` after
the event, from a fresh state, reads them with its own smoothing and holding, and the highest
value for the event's keyword is the event's score. The event is reported ``delay_s`` after the
first stage's, when that score reaches the cascade's threshold for the keyword and the
refractory period of the first stage's rule has passed since the keyword's last reported event.

The cascade's events are therefore the first stage's events whose verifier score reaches a
threshold. :func:`cascade_track` writes each event's score at its (delayed) decision step and
zeros elsewhere; the decision rule with no smoothing and the first stage's refractory period
(:func:`cascade_rule`) gives exactly those events on that track. ``kws eval`` and the cascade's
calibration read a cascade that way, and tests hold the streaming :class:`Verification` to the
same events. The manifest's ``"verifier"`` section (:class:`kws.core.contract.VerifierSpec`)
names the verifier's folder, the gate and cascade thresholds, the window and the delay.
"""

from __future__ import annotations

import logging
from typing import Mapping

import numpy as np

from kws.core.audio import as_float32
from kws.core.contract import Manifest, ManifestError
from kws.core.decision import NO_EVENT, DecisionRule, decision_track, events, find_events
from kws.core.timing import Timing
from kws.runtime.detector import Detection, chosen_thresholds
from kws.runtime.engine import OnnxModel

log = logging.getLogger(__name__)


class Verifier:
    """A first-stage model's verifier, loaded once and shared by every stream.

    Args:
        manifest: the first stage's manifest, with a ``"verifier"`` section.
        thresholds: keyword -> cascade threshold in place of the manifest's (others keep theirs,
            or the budget's).
        max_fa_per_hour: thresholds from the cascade's calibration table for this budget.
        refractory_s: the refractory period of reported events in place of the first stage's.

    Raises:
        ManifestError: no verifier section, or a verifier whose keywords differ.
    """

    def __init__(self, manifest: Manifest, thresholds: Mapping[str, float] | None = None,
                 max_fa_per_hour: float | None = None, refractory_s: float | None = None
                 ) -> None:
        spec = manifest.verifier
        if spec is None:
            raise ManifestError(f"{manifest.folder}: the model has no verifier")
        self.spec = spec
        self.model = OnnxModel(manifest.folder / spec.folder)
        if self.model.keywords != manifest.keywords:
            raise ManifestError(f"{manifest.folder / spec.folder}: the verifier's keywords "
                                f"{list(self.model.keywords)} differ from the model's "
                                f"{list(manifest.keywords)}")
        self.keywords = manifest.keywords
        self.timing = Timing.of(manifest.frontend, manifest.step_frames)
        self.delay_steps = round(spec.delay_s / self.timing.step_s)
        self.sample_rate = manifest.frontend.sample_rate
        self.window = int(round(spec.window_s * self.sample_rate))
        chosen = chosen_thresholds(self.keywords, spec.thresholds, spec.calibration,
                                   spec.calibration_hours, thresholds, max_fa_per_hour)
        self.rule = cascade_rule(manifest.rule.overridden(refractory_s=refractory_s), chosen)

    def gate(self, rule: DecisionRule) -> DecisionRule:
        """The first stage's ``rule`` at the gate thresholds, refractory for one step only (the
        cascade applies the rule's refractory period to verified events)."""
        return rule.overridden(thresholds=self.spec.gate, refractory_s=self.timing.step_s)

    def due(self, step: int) -> tuple[int, float]:
        """(decision step, time in s) of a first-stage event at ``step``."""
        decided = step + self.delay_steps
        return decided, self.timing.end_of(decided)

    def score(self, wave: np.ndarray, keyword: int) -> float:
        """The verifier's score for ``keyword`` (column index) on ``(n,)`` float32 audio: its
        highest smoothed and held value, 0 when the audio is shorter than one step."""
        scores = self.model.score_audio(wave[-self.window:])[:, [keyword]]
        own = self.model.manifest.rule
        return float(decision_track(scores, own.smoothing_steps, own.min_steps).max(initial=0))

    def new_stream(self) -> "Verification":
        return Verification(self)


def cascade_rule(first: DecisionRule, thresholds: Mapping[str, float]) -> DecisionRule:
    """The rule that reads a :func:`cascade_track`: ``thresholds``, no smoothing or holding,
    the first stage's refractory period."""
    return DecisionRule(thresholds, 1, 1, first.refractory_s)


def cascade_track(verifier: Verifier, first_scores: np.ndarray, wave: np.ndarray,
                  first_rule: DecisionRule) -> np.ndarray:
    """``(steps, K)`` float64: each event of the first stage (``first_scores`` ``(steps, K)`` of
    ``wave``, read with ``first_rule`` at the gate thresholds) scored by the verifier, at its
    decision step (the last step for an event too close to the end, the higher of two there);
    0 elsewhere."""
    gate = verifier.gate(first_rule)
    track = decision_track(first_scores, gate.smoothing_steps, gate.min_steps)
    out = np.zeros(track.shape, np.float64)
    refractory = gate.refractory_steps(verifier.timing.step_s)
    for k, kw in enumerate(verifier.keywords):
        for step in events(track[:, k], gate.thresholds[kw], refractory):
            decided, time_s = verifier.due(int(step))
            end = min(len(wave), int(round(time_s * verifier.sample_rate)))
            at = min(decided, len(out) - 1)
            out[at, k] = max(out[at, k], verifier.score(wave[:end], k))
    return out


class Verification:
    """One stream's verification: the recent audio and the events waiting for theirs.

    Feed it every chunk of audio (:meth:`add`) and the first stage's events
    (:meth:`check`); it returns the events whose verifier score reaches the threshold, once the
    audio up to their decision time has arrived (or at :meth:`check` with ``final``).
    """

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self.keep = verifier.window + int(verifier.sample_rate)  # a second of slack
        self.reset()

    def reset(self) -> None:
        # buffer[:filled] holds the stream's last `filled` samples (at least `keep`, or all);
        # twice `keep` long, so the recent audio moves to its start once per `keep` samples
        self.buffer = np.zeros(2 * self.keep, np.float32)
        self.filled = 0
        self.received = 0  # samples since the stream start
        self.pending: list[tuple[int, int, Detection]] = []  # due sample, step, first event
        self.last = np.full(len(self.verifier.keywords), NO_EVENT)  # step of the last report

    def add(self, samples: np.ndarray) -> None:
        x = as_float32(samples).reshape(-1)
        self.received += len(x)
        x = x[-self.keep:]
        if self.filled + len(x) > len(self.buffer):
            kept = self.keep - len(x)
            self.buffer[:kept] = self.buffer[self.filled - kept:self.filled]
            self.filled = kept
        self.buffer[self.filled:self.filled + len(x)] = x
        self.filled += len(x)

    def check(self, detections: list[Detection], final: bool = False) -> list[Detection]:
        """Queue the first stage's new events; return those now verified, in time order."""
        v = self.verifier
        for d in detections:
            step, time_s = v.due(v.timing.step_at(d.time_s))
            self.pending.append((int(round(time_s * v.sample_rate)), step, d))
        refractory = v.rule.refractory_steps(v.timing.step_s)
        levels = v.rule.levels(v.keywords)
        out, waiting = [], []
        for due, step, d in sorted(self.pending, key=lambda p: p[0]):
            if due > self.received and not final:
                waiting.append((due, step, d))
                continue
            end = self.filled - (self.received - min(due, self.received))
            k = v.keywords.index(d.keyword)
            score = v.score(self.buffer[:end], k)
            log.debug("verifier: %s at %.2f s scored %.3f", d.keyword, d.time_s, score)
            # the rule on this event's one-step track (zeros around it: always armed)
            fired, last, _ = find_events(np.array([score]), levels[k], refractory,
                                         int(self.last[k] - step))
            if fired:
                self.last[k] = step + last
                out.append(Detection(d.keyword, score, due / v.sample_rate, d.start_s))
        self.pending = waiting
        return out
