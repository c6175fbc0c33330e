"""Speech embedding features: 16 kHz audio -> one 96-dim embedding every 80 ms.

The frontend behind ``[frontend] kind = "speech_embedding"``. It is Google's speech embedding
model (Apache-2.0; as converted to ONNX by openWakeWord, see ``speech_embedding/NOTICE``), kept
frozen. It was trained on a large body of real speech, so a keyword model on top of it learns
from synthetic voices what also holds for real ones, which is how openWakeWord trains from TTS
alone. Log-mel models learn the synthetic voices themselves and transfer far worse.

Two ONNX graphs, run with onnxruntime (no torch):

* ``melspectrogram.onnx``: audio at int16 scale -> log-mel ``(frames, 32)``; frame ``j`` covers
  samples ``[160 j, 160 j + 512)`` with no padding. Its output is mapped by ``x / 10 + 2``, as
  openWakeWord does.
* ``embedding_model.onnx``: mel frames ``(B, F, 32, 1)`` -> embeddings ``(B, T, 96)``,
  ``T = 1 + (F - 76) // 8``, embedding ``i`` from frames ``[8 i, 8 i + 76)``. openWakeWord's
  graph computes one 76-frame window per run; this one (same weights, made from it by
  :mod:`kws.features.embedding_graph`) shares the work of overlapping windows: the same values,
  6x faster on whole clips.

Embedding ``i`` uses mel frames ``[8 i, 8 i + 76)``, i.e. samples ``[1280 i, 1280 i + 12512)``:
the framing rule of :mod:`kws.core.timing` with a hop of 80 ms and a window of 782 ms. So the
model steps, timing and :class:`kws.runtime.Stream` work unchanged, and a stream gives the
embeddings of the whole clip (to float rounding, ~1e-5) whatever its chunk sizes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from kws.core.timing import num_frames

FILES = Path(__file__).parent / "speech_embedding"
DIM = 96  # embedding size
MEL_HOP, MEL_WINDOW = 160, 512  # samples
MEL_PER_EMBEDDING, MEL_STRIDE = 76, 8  # mel frames per embedding, mel frames between embeddings
HOP = MEL_HOP * MEL_STRIDE  # 1280 samples: 80 ms
WINDOW = MEL_HOP * (MEL_PER_EMBEDDING - 1) + MEL_WINDOW  # 12512 samples: 782 ms
SCALE = 32767.0  # the graphs expect int16-scaled audio
CHUNK = 512  # embeddings per clip per run of the embedding graph: bounds its memory
GRAPHS = ("melspectrogram.onnx", "embedding_model.onnx")
# sha256 of graphs that compute what GRAPHS compute: openWakeWord's window graph, which models
# exported before kws shipped the sequence graph name
SAME_AS = {"embedding_model.onnx":
           {"70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f"}}
_threads = 0  # onnxruntime's compute threads for whole clips; 0: its default (one per core)
STREAM_THREADS = 1  # a stream's 80 ms steps are too small to share: more threads only spin


def num_embeddings(n_samples: int) -> int:
    """Embeddings a clip of ``n_samples`` gives (0 if shorter than one window)."""
    return num_frames(n_samples, WINDOW, HOP)


def limit_threads(threads: int) -> None:
    """Run the graphs on ``threads`` compute threads from now on (0: one per core). A forked
    worker process calls this: sessions made before the fork are left untouched, their threads
    do not exist in the child."""
    global _threads
    _threads = threads


@lru_cache(maxsize=None)
def _sessions_of(threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    return tuple(ort.InferenceSession(str(FILES / name), opts, providers=["CPUExecutionProvider"])
                 for name in GRAPHS)


def _sessions():
    return _sessions_of(_threads)


def mel(waves: np.ndarray, sessions: tuple | None = None) -> np.ndarray:
    """``(B, n)`` float audio in [-1, 1] -> ``(B, frames, 32)`` transformed log-mel (on
    ``sessions``, the two graphs' onnxruntime sessions; default: as :func:`limit_threads` set)."""
    frames = num_frames(waves.shape[1], MEL_WINDOW, MEL_HOP)
    if frames == 0:
        return np.zeros((len(waves), 0, 32), dtype=np.float32)
    used = waves[:, :MEL_HOP * (frames - 1) + MEL_WINDOW]
    graph = (sessions or _sessions())[0]
    out = graph.run(None, {"input": np.ascontiguousarray(used * SCALE, np.float32)})[0]
    return out.reshape(len(waves), frames, 32) / 10.0 + 2.0


def embed_mel(mels: np.ndarray, sessions: tuple | None = None) -> np.ndarray:
    """``(B, frames, 32)`` mel -> ``(B, T, 96)`` embeddings, ``T = 1 + (frames - 76) // 8``
    (``sessions`` as for :func:`mel`)."""
    b, frames, _ = mels.shape
    t = num_frames(frames, MEL_PER_EMBEDDING, MEL_STRIDE)
    out = np.zeros((b, t, DIM), dtype=np.float32)
    graph = (sessions or _sessions())[1]
    for first in range(0, t, CHUNK):
        n = min(CHUNK, t - first)
        part = mels[:, MEL_STRIDE * first:MEL_STRIDE * (first + n - 1) + MEL_PER_EMBEDDING]
        out[:, first:first + n] = graph.run(None, {"input_1": np.ascontiguousarray(
            part[..., None], np.float32)})[0]
    return out


def embed(waves: np.ndarray) -> np.ndarray:
    """``(n,)`` or ``(B, n)`` float audio in [-1, 1] -> ``(T, 96)`` or ``(B, T, 96)`` float32."""
    waves = np.asarray(waves, dtype=np.float32)
    single = waves.ndim == 1
    out = embed_mel(mel(waves[None] if single else waves))
    return out[0] if single else out


class StreamingEmbedding:
    """Audio chunks in, embeddings out; the streaming twin of :func:`embed` (same interface as
    :class:`kws.features.logmel.StreamingFrontend`). Its graphs run on
    :data:`STREAM_THREADS` compute thread: a device listening all day spends a few percent of
    one core on them, not most of every core in onnxruntime's spinning thread pool."""

    def __init__(self) -> None:
        self.sessions = _sessions_of(STREAM_THREADS)
        self.reset()

    def reset(self) -> None:
        self._audio = np.zeros(0, dtype=np.float32)  # from the next mel frame's first sample
        self._mel = np.zeros((0, 32), dtype=np.float32)  # from the next embedding's first frame
        self._pending = 0  # samples received since the next embedding's first sample

    @property
    def pending_samples(self) -> int:
        """Samples received that no returned embedding has started past."""
        return self._pending

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """Push float32 samples; return the ``(n, 96)`` embeddings they complete."""
        self._audio = np.concatenate((self._audio, np.asarray(samples, dtype=np.float32)))
        self._pending += len(samples)
        new = mel(self._audio[None], self.sessions)[0]
        self._audio = self._audio[MEL_HOP * len(new):]
        self._mel = np.concatenate((self._mel, new))
        out = embed_mel(self._mel[None], self.sessions)[0]
        self._mel = self._mel[MEL_STRIDE * len(out):]
        self._pending -= HOP * len(out)
        return out
