"""Other wake word engines behind our engine interface, for side-by-side evaluation and benchmarks.

``openwakeword:alexa`` (PyPI ``openwakeword``, its bundled ONNX models, 80 ms steps) and
``microwakeword:alexa`` (PyPI ``pymicro-wakeword``, its bundled TFLite models, 30 ms steps; its
score is the mean of the last ``sliding_window_size`` probabilities, as it decides). Both are
imported only when named; a missing package raises :class:`PeerUnavailable` saying what to
install (the ``peers`` extra). The same event rule as for our models is applied to their scores.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from kws.core.timing import Timing

PEERS = ("openwakeword", "microwakeword")
OWW_CHUNK = 1280  # samples: openWakeWord's 80 ms frame


class PeerUnavailable(RuntimeError):
    """A peer engine's package is not installed."""


class OpenWakeWordStream:
    """Streams int16 audio into an openWakeWord model; one score per 80 ms."""

    def __init__(self, keyword: str) -> None:
        try:
            import openwakeword
            from openwakeword.model import Model
        except ImportError as e:
            raise PeerUnavailable("openwakeword is not installed: pip install "
                                  "'openwakeword==0.5.1' (or the kws[peers] extra)") from e
        paths = [p for p in openwakeword.get_pretrained_model_paths("onnx")
                 if keyword in p.rsplit("/", 1)[-1]]
        if not paths:
            raise PeerUnavailable(f"openwakeword has no bundled model for {keyword!r}")
        # openWakeWord fills its feature buffers with random noise at start: seed it so that
        # every evaluation of the same audio gives the same scores
        saved = np.random.get_state()
        np.random.seed(0)
        try:
            self.model = Model(wakeword_models=paths[:1], inference_framework="onnx")
        finally:
            np.random.set_state(saved)
        self.name = next(iter(self.model.models))
        self._pending = np.zeros(0, np.int16)

    def accept(self, pcm: np.ndarray) -> np.ndarray:
        buf = np.concatenate((self._pending, pcm))
        whole = len(buf) - len(buf) % OWW_CHUNK
        self._pending = buf[whole:]
        out = [self.model.predict(buf[i:i + OWW_CHUNK])[self.name]
               for i in range(0, whole, OWW_CHUNK)]
        return np.asarray(out, dtype=np.float32).reshape(-1, 1)


class MicroWakeWordStream:
    """Streams int16 audio into a microWakeWord model; one (smoothed) score per 30 ms."""

    def __init__(self, keyword: str) -> None:
        try:
            from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model
        except ImportError as e:
            raise PeerUnavailable("pymicro-wakeword is not installed: pip install "
                                  "pymicro-wakeword (or the kws[peers] extra)") from e
        try:
            builtin = Model(keyword)
        except ValueError as e:
            raise PeerUnavailable(f"pymicro-wakeword has no bundled model for {keyword!r} "
                                  f"({[m.value for m in Model]})") from e
        self.model = MicroWakeWord.from_builtin(builtin)
        self.features = MicroWakeWordFeatures()
        self._seen = 0  # feature frames fed; the model infers once per `stride` of them

    def accept(self, pcm: np.ndarray) -> np.ndarray:
        out = []
        for feats in self.features.process_streaming(pcm.astype(np.int16).tobytes()):
            prob = self.model.process_streaming_prob(feats)
            self._seen += 1
            if self._seen % self.model.stride == 0:
                out.append(0.0 if prob is None else prob)
        return np.asarray(out, dtype=np.float32).reshape(-1, 1)


STREAMS: dict[str, tuple[Callable, Timing]] = {
    "openwakeword": (OpenWakeWordStream, Timing(step_frames=8, hop_s=0.010, window_s=0.010)),
    "microwakeword": (MicroWakeWordStream, Timing(step_frames=3, hop_s=0.010, window_s=0.030)),
}


def parse_spec(spec: str) -> tuple[str, str]:
    """``ENGINE:KEYWORD`` -> (engine, keyword).

    Raises:
        ValueError: unknown engine name or malformed spec.
    """
    engine, _, keyword = spec.partition(":")
    if engine not in STREAMS or not keyword:
        raise ValueError(f"peer {spec!r}: expected ENGINE:KEYWORD with ENGINE one of {PEERS}")
    return engine, keyword


def peer_streams(spec: str) -> tuple[Callable[[], object], Timing]:
    """(a factory of fresh streams, their step timing) for ``ENGINE:KEYWORD``
    (e.g. ``openwakeword:alexa``); a stream's ``accept(int16 pcm)`` returns ``(steps, 1)``
    scores.

    Raises:
        ValueError: unknown engine name or malformed spec.
        PeerUnavailable: the engine's package or model is missing.
    """
    engine, keyword = parse_spec(spec)
    make, timing = STREAMS[engine]
    make(keyword)  # fail now, not in the middle of an evaluation

    def new_stream():
        return make(keyword)

    return new_stream, timing
