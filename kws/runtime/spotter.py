"""A spotter: one audio stream through a model, the model's stream state and its decision rule.

The one streaming loop of the project: ``kws detect``, ``kws listen``, ``kws serve`` and
``kws bench`` all push audio through :meth:`Spotter.process`::

    model = OnnxModel("path/to/model")            # load once, share between streams
    spotter = Spotter(model)                       # per microphone / file / client
    for chunk in audio:                            # int16 or float32, any size
        for detection in spotter.process(chunk):
            print(detection)
    spotter.flush()                                # end of a file: the last buffered steps

With a :class:`kws.runtime.cascade.Verifier` (a model folder with a verifier), the detector's
events are the first stage's at the gate thresholds, and only those the verifier accepts are
returned, ``delay_s`` later.
"""

from __future__ import annotations

import numpy as np

from kws.core.decision import DecisionRule
from kws.runtime.cascade import Verifier
from kws.runtime.detector import Detection, Detector
from kws.runtime.engine import OnnxModel


class Spotter:
    """Audio in, :class:`Detection` events out, for one stream.

    Args:
        model: the shared engine.
        rule: the decision rule (default: the model's own, see
            :func:`kws.runtime.detector.model_rule` for overrides).
        steps_per_call: model steps per onnxruntime call (default: about 90 ms of steps).
        verifier: the model's verifier; ``rule`` (default: the model's own) is then read at the
            verifier's gate thresholds.

    Attributes:
        last_scores: ``(n, K)`` raw scores of the steps the last call completed.
    """

    def __init__(self, model: OnnxModel, rule: DecisionRule | None = None,
                 steps_per_call: int | None = None, verifier: Verifier | None = None) -> None:
        self.model = model
        self.stream = model.create_stream(steps_per_call)
        if verifier is not None:
            rule = verifier.gate(rule or model.manifest.rule)
        self.detector = Detector.from_manifest(model.manifest, rule)
        self.verification = verifier.new_stream() if verifier else None
        self.last_scores = self.stream.accept_waveform(np.zeros(0, np.float32))

    @property
    def keywords(self) -> tuple[str, ...]:
        return self.model.keywords

    def process(self, samples: np.ndarray) -> list[Detection]:
        """Push int16 or float32 mono samples at the model's rate; return the events they
        complete."""
        self.last_scores = self.stream.accept_waveform(samples)
        found = self.detector.process(self.last_scores)
        if self.verification is None:
            return found
        self.verification.add(samples)
        return self.verification.check(found)

    def flush(self) -> list[Detection]:
        """Score every whole step still buffered (the end of a file) and decide on it."""
        self.last_scores = self.stream.flush()
        found = self.detector.process(self.last_scores)
        if self.verification is None:
            return found
        return self.verification.check(found, final=True)

    def reset(self) -> None:
        """Start a new stream: audio, model state and decision state."""
        self.stream.reset()
        self.detector.reset()
        if self.verification is not None:
            self.verification.reset()
