"""An exported model loaded into onnxruntime: the engine shared by all streams."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from kws.contract import (FLOAT_FILE, INPUT_FEATURES, INPUT_STATE, INT8_FILE, OUTPUT_SCORES,
                          OUTPUT_STATE, SESSION_CONFIG, Manifest, ManifestError, load_manifest)
from kws.frontend import features

log = logging.getLogger(__name__)


def default_model_dir() -> Path:
    """The four-keyword model bundled inside the package."""
    return Path(__file__).resolve().parent.parent / "default_model"


class OnnxModel:
    """One onnxruntime session for an exported model folder (see :mod:`kws.contract`).

    Args:
        folder: the exported model folder (``model.json`` inside); default: the bundled model.
        file: which ONNX file to run; default the int8 one when present, else the float one.
        threads: onnxruntime intra-op threads (1 keeps a small board responsive).
    """

    def __init__(self, folder: str | Path | None = None, file: str | None = None,
                 threads: int = 1) -> None:
        self.manifest: Manifest = load_manifest(folder or default_model_dir())
        if file is None:
            file = INT8_FILE if INT8_FILE in self.manifest.files else FLOAT_FILE
        if file not in self.manifest.files:
            raise ManifestError(f"{self.manifest.folder}: {file} is not one of the model's files "
                                f"{sorted(self.manifest.files)}")
        self.file = file
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        for key, value in SESSION_CONFIG.items():
            options.add_session_config_entry(key, value)
        self.session = ort.InferenceSession(str(self.manifest.path_of(file)), options,
                                            providers=["CPUExecutionProvider"])
        names = ([i.name for i in self.session.get_inputs()],
                 [o.name for o in self.session.get_outputs()])
        expected = ([INPUT_FEATURES, INPUT_STATE], [OUTPUT_SCORES, OUTPUT_STATE])
        if names != expected:
            raise ManifestError(f"{file}: inputs/outputs {names} differ from {expected}")
        self.keywords = self.manifest.keywords
        self.step_frames = self.manifest.step_frames
        self._outputs = [OUTPUT_SCORES, OUTPUT_STATE]

    def initial_state(self) -> np.ndarray:
        return np.zeros(self.manifest.state_shape, dtype=np.float32)

    def step(self, features: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run ``(T, n_mels)`` features (T a multiple of ``step_frames``) from ``state``.

        Returns:
            (scores ``(T / step_frames, K)``, new state).
        """
        scores, state = self.session.run(self._outputs, {INPUT_FEATURES: features[None],
                                                         INPUT_STATE: state})
        return scores[0], state

    def score_audio(self, wave: np.ndarray) -> np.ndarray:
        """``(steps, K)`` scores of a whole recording from a fresh state (offline helper)."""
        feats = features(wave, self.manifest.frontend)
        feats = feats[: len(feats) - len(feats) % self.step_frames]
        if len(feats) == 0:
            return np.zeros((0, len(self.keywords)), dtype=np.float32)
        return self.step(np.ascontiguousarray(feats), self.initial_state())[0]

    def create_stream(self, steps_per_call: int | None = None):
        """A new per-stream state object (:class:`kws.runtime.stream.Stream`); by default it
        calls the model once per ~90 ms of steps (:data:`kws.runtime.stream.CALL_S`)."""
        from kws.runtime.stream import CALL_S, Stream

        if steps_per_call is None:
            steps_per_call = max(1, round(CALL_S / self.manifest.step_s))
        return Stream(self, steps_per_call)


def load_exported_engine(folder: Path, file: str | None = None):
    """An evaluation engine (:class:`kws.harness.Engine`) for an exported model folder."""
    from kws.evaluate import Timing
    from kws.harness import Engine

    model = OnnxModel(folder, file)
    fe = model.manifest.frontend
    timing = Timing(model.step_frames, fe.hop_ms / 1000, fe.window_ms / 1000)
    return Engine(f"{folder}/{model.file}", model.keywords, timing, model.score_audio,
                  decision=model.manifest.decision)
