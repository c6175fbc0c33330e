"""Framing and step timing: which samples a feature frame reads, when a model step's score exists.

The one framing rule (log-mel frames, speech embeddings, model steps): frame ``i`` covers samples
``[i * hop, i * hop + window)``, with no padding, so ``n`` samples give
``1 + (n - window) // hop`` frames (0 when ``n < window``) and a stream gives exactly the frames of
the whole clip. A model step stacks ``step_frames`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def num_frames(n_samples: int, window: int, hop: int) -> int:
    """Whole frames (or embeddings, or steps) in ``n_samples`` items of ``window`` every ``hop``."""
    return 0 if n_samples < window else 1 + (n_samples - window) // hop


def step_end_seconds(step: np.ndarray | int, step_frames: int, hop_s: float,
                     window_s: float) -> np.ndarray:
    """Time (s from the stream start) at which a model step's score becomes available: the end of
    the last audio sample its last feature frame reads."""
    return ((np.asarray(step) + 1) * step_frames - 1) * hop_s + window_s


@dataclass(frozen=True)
class Timing:
    """When each score step becomes available: step ``i`` ends at
    ``((i + 1) * step_frames - 1) * hop_s + window_s`` seconds.

    Attributes:
        step_frames: feature frames per model step.
        hop_s: seconds between feature frames.
        window_s: seconds of audio one feature frame reads.
    """

    step_frames: int
    hop_s: float = 0.010
    window_s: float = 0.025

    @classmethod
    def of(cls, frontend, step_frames: int) -> "Timing":
        """The timing of a model with ``step_frames`` frames per step on ``frontend``
        (a :class:`kws.core.config.FrontendConfig`)."""
        return cls(step_frames, frontend.hop_ms / 1000, frontend.window_ms / 1000)

    @property
    def step_s(self) -> float:
        """Seconds between model steps."""
        return self.step_frames * self.hop_s

    def step_times(self, steps: int) -> np.ndarray:
        """``(steps,)`` end times in seconds of steps ``0 .. steps - 1``."""
        return step_end_seconds(np.arange(steps), self.step_frames, self.hop_s, self.window_s)

    def end_of(self, step: int) -> float:
        """End time in seconds of one step, rounded to 0.1 ms (event times)."""
        return float(round(step_end_seconds(step, self.step_frames, self.hop_s, self.window_s), 4))

    def step_at(self, time_s: float) -> int:
        """The step that ends at ``time_s`` (the inverse of :meth:`end_of`)."""
        return int(round(((time_s - self.window_s) / self.hop_s + 1) / self.step_frames - 1))
