"""An exported model loaded into onnxruntime: the engine shared by all streams."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from kws.core.contract import (
    FLOAT_FILE,
    INPUT_FEATURES,
    INPUT_STATE,
    INT8_FILE,
    OUTPUT_SCORES,
    OUTPUT_STATE,
    SESSION_CONFIG,
    Manifest,
    ManifestError,
    load_manifest,
    sha256_of,
)
from kws.features import features
from kws.runtime.stream import CALL_S, Stream

log = logging.getLogger(__name__)


def default_model_dir() -> Path:
    """The four-keyword model bundled inside the package."""
    return Path(__file__).resolve().parent.parent / "default_model"


def check_frontend_weights(manifest: Manifest) -> None:
    """A speech embedding model runs only on the embedding graphs it was trained on, or on
    graphs that compute the same (:data:`kws.features.embedding.SAME_AS`)."""
    trained_on = manifest.raw.get("frontend_weights", {}).get("files", {})
    if not trained_on:
        return
    from kws.features import embedding

    for name, digest in trained_on.items():
        if name not in embedding.GRAPHS or digest not in (
                {sha256_of(embedding.FILES / name)} | embedding.SAME_AS.get(name, set())):
            raise ManifestError(f"{manifest.folder}: the model was trained on another {name} "
                                f"than this kws has in {embedding.FILES}; use the kws version "
                                "it was trained with")


class OnnxModel:
    """One onnxruntime session for an exported model folder (see :mod:`kws.core.contract`).

    Args:
        folder: the exported model folder (``model.json`` inside), or its already validated
            :class:`Manifest` (as export checks a model before it writes the manifest);
            default: the bundled model.
        file: which ONNX file to run; default the int8 one when present, else the float one.
        threads: onnxruntime intra-op threads (1 keeps a small board responsive).
    """

    def __init__(self, folder: str | Path | Manifest | None = None, file: str | None = None,
                 threads: int = 1) -> None:
        self.manifest: Manifest = folder if isinstance(folder, Manifest) \
            else load_manifest(folder or default_model_dir())
        check_frontend_weights(self.manifest)
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
        self._check_shapes()
        self.keywords = self.manifest.keywords
        self.step_frames = self.manifest.step_frames
        self._outputs = [OUTPUT_SCORES, OUTPUT_STATE]

    def _check_shapes(self) -> None:
        """The graph's fixed dimensions are the manifest's (state, bands, keywords)."""
        m = self.manifest
        got = {t.name: t.shape for t in self.session.get_inputs() + self.session.get_outputs()}
        want = {INPUT_STATE: list(m.state_shape), OUTPUT_STATE: list(m.state_shape)}
        for name, (axis, size) in {INPUT_FEATURES: (2, m.frontend.n_mels),
                                   OUTPUT_SCORES: (2, len(m.keywords))}.items():
            want[name] = got[name][:axis] + [size] + got[name][axis + 1:]
        wrong = {name: (got[name], shape) for name, shape in want.items() if got[name] != shape}
        if wrong:
            raise ManifestError(f"{m.folder}: the manifest does not describe {self.file}: "
                                + "; ".join(f"{name} is {g} in the graph, {w} by the manifest"
                                            for name, (g, w) in wrong.items()))

    def initial_state(self) -> np.ndarray:
        """Zero state ``state_shape`` float32: the start of a stream."""
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
        return self.score_features(features(wave, self.manifest.frontend))

    def score_features(self, feats: np.ndarray) -> np.ndarray:
        """``(steps, K)`` scores of a whole recording's ``(frames, n_mels)`` features from a
        fresh state (frames beyond whole steps are dropped)."""
        feats = feats[: len(feats) - len(feats) % self.step_frames]
        if len(feats) == 0:
            return np.zeros((0, len(self.keywords)), dtype=np.float32)
        return self.step(np.ascontiguousarray(feats), self.initial_state())[0]

    def create_stream(self, steps_per_call: int | None = None) -> Stream:
        """A new per-stream state object (:class:`kws.runtime.stream.Stream`); by default it
        calls the model once per ~90 ms of steps (:data:`kws.runtime.stream.CALL_S`)."""
        if steps_per_call is None:
            steps_per_call = max(1, round(CALL_S / self.manifest.step_s))
        return Stream(self, steps_per_call)
