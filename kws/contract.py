"""The contract between export and runtime: ONNX names, manifest format, and its validation.

An exported model folder holds ``model.onnx`` (float32), ``model.int8.onnx`` (int8 weights) and
``model.json`` (the manifest). Both graphs compute one streaming step on a chunk:

    features  (1, T, n_mels) float32, T a multiple of step_frames (T = step_frames is one step)
    state     (1, 1, hidden) float32, zeros at the start of a stream
 -> scores    (1, T / step_frames, n_keywords) float32 keyword probabilities in [0, 1]
    state_out (1, 1, hidden) float32, fed back as ``state`` on the next call

Torch-free: the runtime imports this module.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kws.config import DecisionConfig, FrontendConfig, build

FORMAT_VERSION = 1
MANIFEST = "model.json"
FLOAT_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
INPUT_FEATURES, INPUT_STATE = "features", "state"
OUTPUT_SCORES, OUTPUT_STATE = "scores", "state_out"
OPSET = 17
# onnxruntime: fold the int8 weights' DequantizeLinear into float constants at load time
SESSION_CONFIG = {"session.disable_quant_qdq": "1"}

REQUIRED_KEYS = ("format_version", "keywords", "frontend", "step_frames", "step_s", "state_shape",
                 "files", "inputs", "outputs", "opset")


class ManifestError(ValueError):
    """A model folder's manifest is missing, malformed, of another version, or does not match its
    files; the message names the file and the problem."""


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """The parsed ``model.json``; ``raw`` keeps every field (metrics, calibration, sources).
    ``decision`` is the score rule the thresholds were calibrated with (none before it was
    recorded)."""

    folder: Path
    keywords: tuple[str, ...]
    frontend: FrontendConfig
    step_frames: int
    step_s: float
    state_shape: tuple[int, ...]
    files: dict[str, dict[str, Any]]
    raw: dict[str, Any]
    decision: DecisionConfig = field(default_factory=DecisionConfig)

    def path_of(self, name: str) -> Path:
        return self.folder / name

    @property
    def calibration(self) -> dict[str, dict[str, list]]:
        """keyword -> columns {"threshold", "fa_per_hour", "miss_rate"} (validation DET);
        empty when the model was exported without validation audio."""
        return self.raw.get("calibration", {}) or {}

    @property
    def thresholds(self) -> dict[str, float]:
        """Default threshold per keyword (from the manifest; 0.5 where it has none)."""
        given = self.raw.get("thresholds", {}) or {}
        return {kw: float(given.get(kw, 0.5)) for kw in self.keywords}


def load_manifest(folder: str | Path, check_files: bool = True) -> Manifest:
    """Read and validate ``folder/model.json``.

    Raises:
        ManifestError: missing file, invalid JSON, missing keys, another format version, or an
            ONNX file whose sha256 differs from the manifest's (when ``check_files``).
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{path}: manifest missing (is {folder} an exported model folder?)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: malformed JSON ({e})") from e
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise ManifestError(f"{path}: missing key(s) {missing}")
    if raw["format_version"] != FORMAT_VERSION:
        raise ManifestError(f"{path}: format_version {raw['format_version']!r} is not supported "
                            f"(this kws reads version {FORMAT_VERSION})")
    try:
        frontend = build(FrontendConfig, raw["frontend"], "frontend")
        manifest = Manifest(folder, tuple(raw["keywords"]), frontend, int(raw["step_frames"]),
                            float(raw["step_s"]), tuple(int(x) for x in raw["state_shape"]),
                            dict(raw["files"]), raw,
                            build(DecisionConfig, raw.get("decision", {}), "decision"))
    except (TypeError, ValueError) as e:
        raise ManifestError(f"{path}: bad value ({e})") from e
    if check_files:
        for name, info in manifest.files.items():
            file = folder / name
            if not file.is_file():
                raise ManifestError(f"{path}: lists {name}, which is missing from {folder}")
            if sha256_of(file) != info.get("sha256"):
                raise ManifestError(f"{file}: sha256 does not match the manifest (file changed "
                                    "or corrupt; re-export the model)")
        trained_on = raw.get("frontend_weights", {}).get("files", {})
        for name, digest in trained_on.items():
            from kws import embedding

            if sha256_of(embedding.FILES / name) != digest:
                raise ManifestError(f"{path}: the model was trained on another {name} than "
                                    f"this kws has in {embedding.FILES}; use the kws version "
                                    "it was trained with")
    return manifest
