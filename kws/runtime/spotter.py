"""A spotter: one audio stream through a model, the model's stream state and its decision rule.

The one streaming loop of the project: ``kws detect``, ``kws listen``, ``kws serve`` and
``kws bench`` all push audio through :meth:`Spotter.process`::

    model = OnnxModel("path/to/model")            # load once, share between streams
    spotter = Spotter(model)                       # per microphone / file / client
    for chunk in audio:                            # int16 or float32, any size
        for detection in spotter.process(chunk):
            print(detection)
    spotter.flush()                                # end of a file: the last buffered steps
"""

from __future__ import annotations

import numpy as np

from kws.core.decision import DecisionRule
from kws.runtime.detector import Detection, Detector
from kws.runtime.engine import OnnxModel


class Spotter:
    """Audio in, :class:`Detection` events out, for one stream.

    Args:
        model: the shared engine.
        rule: the decision rule (default: the model's own, see
            :func:`kws.runtime.detector.model_rule` for overrides).
        steps_per_call: model steps per onnxruntime call (default: about 90 ms of steps).

    Attributes:
        last_scores: ``(n, K)`` raw scores of the steps the last call completed.
    """

    def __init__(self, model: OnnxModel, rule: DecisionRule | None = None,
                 steps_per_call: int | None = None) -> None:
        self.model = model
        self.stream = model.create_stream(steps_per_call)
        self.detector = Detector.from_manifest(model.manifest, rule)
        self.last_scores = self.stream.accept_waveform(np.zeros(0, np.float32))

    @property
    def keywords(self) -> tuple[str, ...]:
        return self.model.keywords

    def process(self, samples: np.ndarray) -> list[Detection]:
        """Push int16 or float32 mono samples at the model's rate; return the events they
        complete."""
        self.last_scores = self.stream.accept_waveform(samples)
        return self.detector.process(self.last_scores)

    def flush(self) -> list[Detection]:
        """Score every whole step still buffered (the end of a file) and decide on it."""
        self.last_scores = self.stream.flush()
        return self.detector.process(self.last_scores)

    def reset(self) -> None:
        """Start a new stream: audio, model state and decision state."""
        self.stream.reset()
        self.detector.reset()
