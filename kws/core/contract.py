"""The contract between export and runtime: ONNX names, manifest format, and its validation.

An exported model folder holds ``model.onnx`` (float32), ``model.int8.onnx`` (int8 weights) and
``model.json`` (the manifest). Both graphs compute one streaming step on a chunk:

    features  (1, T, n_mels) float32, T a multiple of step_frames (T = step_frames is one step)
    state     (1, 1, hidden) float32, zeros at the start of a stream
 -> scores    (1, T / step_frames, n_keywords) float32 keyword probabilities in [0, 1]
    state_out (1, 1, hidden) float32, fed back as ``state`` on the next call

The manifest comes from a file, so every field that anything reads is checked here, by type and
range, before use: a bad one raises :class:`ManifestError` naming the field. Model files must lie
inside the model folder. Torch-free: the runtime imports this module.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from kws.core.checks import build, check_keyword_name, is_int, is_number
from kws.core.config import FrontendConfig
from kws.core.decision import DecisionRule

FORMAT_VERSION = 1
MANIFEST = "model.json"
FLOAT_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
INPUT_FEATURES, INPUT_STATE = "features", "state"
OUTPUT_SCORES, OUTPUT_STATE = "scores", "state_out"
OPSET = 17
# onnxruntime: fold the int8 weights' DequantizeLinear into float constants at load time
SESSION_CONFIG = {"session.disable_quant_qdq": "1"}
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_HIDDEN = 4096  # state units a manifest may declare
MAX_KEYWORDS = 64
VERIFIER_WINDOW_S = (1.0, 10.0)  # seconds of audio a verifier may read, and how far past the
VERIFIER_DELAY_S = (0.0, 2.0)    # first stage's event it may wait

REQUIRED_KEYS = ("format_version", "keywords", "frontend", "step_frames", "step_s", "state_shape",
                 "files", "inputs", "outputs", "opset")


class ManifestError(ValueError):
    """A model folder's manifest is missing, malformed, of another version, or does not match its
    files; the message names the file and the problem."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """The parsed ``model.json``; ``raw`` keeps every field (metrics, calibration, sources).

    Attributes:
        rule: the decision rule the thresholds were calibrated with, with the default
            thresholds (0.5 where the manifest names none).
        calibration_hours: hours of negative audio behind the calibration table (None: not
            recorded; models exported before the field: the validation report's figure).
    """

    folder: Path
    keywords: tuple[str, ...]
    frontend: FrontendConfig
    step_frames: int
    step_s: float
    state_shape: tuple[int, ...]
    files: dict[str, dict[str, Any]]
    raw: dict[str, Any]
    rule: DecisionRule
    verifier: "VerifierSpec | None" = None
    calibration_hours: float | None = None

    def path_of(self, name: str) -> Path:
        """A model file's path (names are checked to stay inside the folder at load)."""
        return self.folder / name

    @property
    def calibration(self) -> dict[str, dict[str, list]]:
        """keyword -> columns {"threshold", "fa_per_hour", "miss_rate"} (validation DET);
        empty when the model was exported without validation audio."""
        return self.raw.get("calibration", {}) or {}

    @property
    def thresholds(self) -> dict[str, float]:
        """Default threshold per keyword."""
        return dict(self.rule.thresholds)


def load_manifest(folder: str | Path, check_files: bool = True) -> Manifest:
    """Read and validate ``folder/model.json``.

    Raises:
        ManifestError: missing file, invalid JSON, missing keys, another format version, a field
            of the wrong type or range, a file outside the folder, or an ONNX file whose sha256
            differs from the manifest's (when ``check_files``).
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{path}: manifest missing (is {folder} an exported model folder?)")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
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
        manifest = parse(folder, raw)
    except (TypeError, ValueError) as e:
        raise ManifestError(f"{path}: bad value ({e})") from e
    if check_files:
        check_model_files(manifest)
    return manifest


def _need(ok: bool, field: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{field} = {value!r} is not allowed; expected {allowed}")


def parse(folder: Path, raw: dict[str, Any]) -> Manifest:
    """The typed :class:`Manifest` of a manifest dict; ValueError names a bad field."""
    keywords = raw["keywords"]
    _need(isinstance(keywords, list) and 1 <= len(keywords) <= MAX_KEYWORDS
          and len(set(map(str, keywords))) == len(keywords), "keywords", keywords,
          f"a list of 1..{MAX_KEYWORDS} distinct names")
    for kw in keywords:
        check_keyword_name(kw, "keywords")
    _need(isinstance(raw["frontend"], dict), "frontend", raw["frontend"], "an object")
    frontend = build(FrontendConfig, raw["frontend"], "frontend")
    step_frames, step_s = raw["step_frames"], raw["step_s"]
    _need(is_int(step_frames) and 1 <= step_frames <= 64, "step_frames", step_frames,
          "an integer 1..64")
    _need(is_number(step_s) and math.isclose(step_s, step_frames * frontend.hop_ms / 1000),
          "step_s", step_s, f"step_frames x hop ({step_frames * frontend.hop_ms / 1000:g} s)")
    shape = raw["state_shape"]
    _need(isinstance(shape, list) and len(shape) == 3 and all(map(is_int, shape))
          and shape[:2] == [1, 1] and 1 <= shape[2] <= MAX_HIDDEN, "state_shape", shape,
          f"[1, 1, hidden] with hidden 1..{MAX_HIDDEN}")
    files = raw["files"]
    _need(isinstance(files, dict) and files, "files", files, "an object of file name -> info")
    for name, info in files.items():
        _need(is_model_file_name(name), "files", name,
              "plain file names inside the model folder (no '/', '..' or absolute paths)")
        _need(isinstance(info, dict) and isinstance(info.get("sha256"), str)
              and is_int(info.get("bytes", 0)), f"files[{name!r}]", info,
              '{"sha256": hex digest, "bytes": size}')
    thresholds = raw.get("thresholds") or {}
    _need(isinstance(thresholds, dict) and set(thresholds) <= set(keywords), "thresholds",
          thresholds, f"an object of keyword -> threshold for keywords {keywords}")
    decision = raw.get("decision") or {}
    _need(isinstance(decision, dict), "decision", decision, "an object")
    rule = build(DecisionRule, {**decision, "thresholds": {
        kw: thresholds.get(kw, 0.5) for kw in keywords}}, "decision")
    weights = raw.get("frontend_weights") or {}
    _need(isinstance(weights, dict) and isinstance(weights.get("files", {}), dict)
          and all(isinstance(v, str) for v in weights.get("files", {}).values()),
          "frontend_weights", weights, '{"files": {graph name: sha256}}')
    calibration = raw.get("calibration") or {}
    _need(isinstance(calibration, dict), "calibration", calibration, "an object")
    for kw, table in calibration.items():
        check_calibration(kw, table)
    hours = calibration_hours(raw, "calibration_hours")
    if hours is None:  # exported before the field: the validation report's figure, if any
        report = raw.get("validation")
        int8 = report.get("int8") if isinstance(report, dict) else None
        recorded = int8.get("negative_hours") if isinstance(int8, dict) else None
        hours = float(recorded) if is_number(recorded) and recorded > 0 else None
    verifier = parse_verifier(raw["verifier"], keywords) if raw.get("verifier") else None
    return Manifest(folder, tuple(keywords), frontend, step_frames, float(step_s), tuple(shape),
                    dict(files), raw, rule, verifier, hours)


@dataclass(frozen=True)
class VerifierSpec:
    """The ``"verifier"`` section of a first-stage manifest: a second model that checks each
    event of the first (see :mod:`kws.runtime.cascade`).

    Attributes:
        folder: the verifier's exported model folder, a sub-folder of the model folder.
        gate: keyword -> the first stage's threshold while a verifier checks its events.
        thresholds: keyword -> the verifier's threshold on its score of an event.
        window_s: seconds of audio the verifier reads, ending ``delay_s`` after the event.
        delay_s: how long after the first stage's event the verifier decides.
        calibration: the cascade's calibration table (as ``Manifest.calibration``).
        calibration_hours: hours of negative audio behind it.
    """

    folder: str
    gate: dict[str, float]
    thresholds: dict[str, float]
    window_s: float
    delay_s: float
    calibration: dict[str, dict[str, list]]
    calibration_hours: float | None


def parse_verifier(raw: Any, keywords: list[str]) -> VerifierSpec:
    """The typed :class:`VerifierSpec`; ValueError names a bad field."""
    _need(isinstance(raw, dict), "verifier", raw, "an object")
    folder = raw.get("folder")
    _need(is_model_file_name(folder), "verifier.folder", folder,
          "a plain sub-folder name inside the model folder")
    tables = {}
    for name in ("gate", "thresholds"):
        table = raw.get(name)
        _need(isinstance(table, dict) and set(table) == set(keywords)
              and all(is_number(t) and 0 < t <= 1 for t in table.values()),
              f"verifier.{name}", table, f"a threshold in (0, 1] for each of {keywords}")
        tables[name] = {kw: float(table[kw]) for kw in keywords}
    spans = {}
    for name, (low, high) in (("window_s", VERIFIER_WINDOW_S), ("delay_s", VERIFIER_DELAY_S)):
        value = raw.get(name)
        _need(is_number(value) and low <= value <= high, f"verifier.{name}", value,
              f"seconds in [{low:g}, {high:g}]")
        spans[name] = float(value)
    calibration = raw.get("calibration") or {}
    _need(isinstance(calibration, dict) and set(calibration) <= set(keywords),
          "verifier.calibration", "...", f"an object of keyword -> table for {keywords}")
    for kw, table in calibration.items():
        check_calibration(kw, table)
    return VerifierSpec(folder, tables["gate"], tables["thresholds"], spans["window_s"],
                        spans["delay_s"], calibration,
                        calibration_hours(raw, "verifier.calibration_hours"))


def is_model_file_name(name: Any) -> bool:
    """A file name that stays inside the model folder: one plain path part."""
    return (isinstance(name, str) and 0 < len(name) <= 255 and name.isprintable()
            and "\\" not in name and len(PurePosixPath(name).parts) == 1
            and name not in (".", "..") and not name.startswith("/"))


def calibration_hours(section: dict[str, Any], field: str) -> float | None:
    """A section's ``calibration_hours`` (None when absent); ValueError naming ``field``
    unless it is a finite number > 0."""
    hours = section.get("calibration_hours")
    _need(hours is None or (is_number(hours) and hours > 0), field, hours, "a finite number > 0")
    return None if hours is None else float(hours)


def check_calibration(keyword: str, table: Any) -> None:
    """A calibration table: equal-length columns, thresholds increasing in (0, 1], false
    alarms per hour finite and >= 0."""
    field = f"calibration[{keyword!r}]"
    _need(isinstance(table, dict) and {"threshold", "fa_per_hour"} <= set(table), field, "...",
          'an object with "threshold" and "fa_per_hour" columns')
    thr, fa = table["threshold"], table["fa_per_hour"]
    _need(isinstance(thr, list) and isinstance(fa, list) and len(thr) == len(fa) > 0, field,
          f"{len(thr) if isinstance(thr, list) else thr} thresholds",
          "columns of equal, non-zero length")
    _need(all(is_number(t) and 0 < t <= 1 for t in thr)
          and all(a < b for a, b in zip(thr, thr[1:])), f"{field}.threshold", "...",
          "increasing numbers in (0, 1]")
    _need(all(is_number(f) and f >= 0 for f in fa), f"{field}.fa_per_hour", "...",
          "finite numbers >= 0")


def check_model_files(manifest: Manifest) -> None:
    """Every listed file exists inside the folder and has its recorded sha256."""
    folder, path = manifest.folder, manifest.folder / MANIFEST
    for name, info in manifest.files.items():
        file = folder / name
        if not file.is_file():
            raise ManifestError(f"{path}: lists {name}, which is missing from {folder}")
        if sha256_of(file) != info.get("sha256"):
            raise ManifestError(f"{file}: sha256 does not match the manifest (file changed "
                                "or corrupt; re-export the model)")
