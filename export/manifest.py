"""The manifest (``model.json``) written beside the ONNX files; read by :mod:`kws.core.contract`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kws.core.config import Config, to_dict
from kws.core.contract import (
    FORMAT_VERSION,
    INPUT_FEATURES,
    INPUT_STATE,
    OPSET,
    OUTPUT_SCORES,
    OUTPUT_STATE,
    sha256_of,
)
from kws.metrics.det import Det
from kws.runtime.detector import table_budget

log = logging.getLogger(__name__)

DEFAULT_FA_PER_HOUR = 0.5  # the budget of a model's default thresholds

# Licences of the corpora this project knows, by a folder name in the source path.
KNOWN_LICENSES = {
    "wake-word-benchmark": ("Picovoice wake-word-benchmark recordings", "Apache-2.0"),
    "speech-commands": ("Speech Commands v0.02 (test set)", "CC-BY-4.0"),
    "librispeech": ("LibriSpeech", "CC-BY-4.0"),
    "precise-community": ("Mycroft Precise community data", "public domain (see its licenses/)"),
    "background-noise": ("Speech Commands background noise + generated noise", "CC-BY-4.0"),
    "speechocean762": ("speechocean762 read English (OpenSLR 101)", "CC-BY-4.0"),
    "wesnoth": ("Battle for Wesnoth music (Debian wesnoth-1.16-music)", "GPL-2.0-or-later"),
    "/synth/": ("kws synth renderings (espeak-ng, flite, festival, hibari, piper)",
                "generated speech; each engine's licence is in its report.json"),
    "activations.jsonl": ("false alarms cut from the negatives above (kws mine, kws listen)",
                          "that of the audio they were cut from"),
}


def license_of(path: str) -> dict[str, str]:
    for key, (name, licence) in KNOWN_LICENSES.items():
        if key in path:
            return {"path": path, "dataset": name, "license": licence}
    return {"path": path, "dataset": "unknown", "license": "unknown: check the source"}


def shareable(path: str) -> str:
    """``path`` as a shipped manifest may show it: relative to the current folder when inside
    it, ``~/...`` when inside the home folder, else as given (relative config paths stay)."""
    p = Path(path)
    if not p.is_absolute():
        return path
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        if p.is_relative_to(base) and p != base:
            return prefix + str(p.relative_to(base))
    return path


def data_sources(cfg: Config) -> list[dict[str, str]]:
    """Each corpus of ``cfg``'s ``[data]`` with its licence (:func:`license_of`), by the path
    the config gives (:func:`shareable`)."""
    d = cfg.data
    paths = [p for folders in d.keyword_dirs.values() for p in folders]
    paths += list(d.negative_dirs) + list(d.confusable_dirs) + list(d.eval_negative_dirs)
    paths += list(d.noise_dirs)
    paths += list(d.manifests)
    return [license_of(shareable(p)) for p in dict.fromkeys(paths)]


def calibration_table(det: Det, keywords: tuple[str, ...]) -> dict[str, dict[str, list]]:
    """Per keyword, columns over the threshold grid (validation DET):
    ``{"threshold": [...], "fa_per_hour": [...], "miss_rate": [...]}``."""
    table = {}
    for j, kw in enumerate(keywords):
        miss = det.miss_rate[:, j]
        table[kw] = {"threshold": [float(t) for t in det.thresholds],
                     "fa_per_hour": [round(float(f), 4) for f in det.fa_per_hour[:, j]],
                     "miss_rate": [None if np.isnan(m) else round(float(m), 4) for m in miss]}
    return table


def default_thresholds(table: dict[str, dict[str, list]], hours: float,
                       keywords: tuple[str, ...]) -> dict[str, float]:
    """A model's default thresholds: those ``--max-fa-per-hour 0.5`` picks from its calibration
    ``table`` over ``hours`` (:func:`kws.runtime.detector.table_budget`, 90% confidence; where
    the audio cannot show 0.5, the lowest thresholds with no false alarm on it), so that giving
    no budget and giving the default one run the same."""
    log.info("default thresholds: a budget of %g false alarms per hour, as --max-fa-per-hour "
             "%g picks them", DEFAULT_FA_PER_HOUR, DEFAULT_FA_PER_HOUR)
    return table_budget(table, hours, keywords, DEFAULT_FA_PER_HOUR)


def build_manifest(folder: Path, cfg: Config, files: list[str], extra: dict) -> dict:
    """The manifest dict; ``extra`` adds metrics, calibration, thresholds and quantization."""
    hidden = cfg.model.hidden
    s, m, k = cfg.model.stack_frames, cfg.frontend.n_mels, len(cfg.model.keywords)
    return {
        "format_version": FORMAT_VERSION,
        "keywords": list(cfg.model.keywords),
        "frontend": to_dict(cfg.frontend),
        "step_frames": s,
        "step_s": s * cfg.frontend.hop_ms / 1000,
        "state_shape": [1, 1, hidden],
        "inputs": {INPUT_FEATURES: [1, f"T (multiple of {s})", m], INPUT_STATE: [1, 1, hidden]},
        "outputs": {OUTPUT_SCORES: [1, f"T/{s}", k], OUTPUT_STATE: [1, 1, hidden]},
        "opset": OPSET,
        "model": to_dict(cfg.model),
        "files": {name: {"sha256": sha256_of(folder / name),
                         "bytes": (folder / name).stat().st_size} for name in files},
        "decision": cfg.decision.settings(),
        "data_sources": data_sources(cfg),
        **frontend_weights(cfg),
        **extra,
    }


def frontend_weights(cfg: Config) -> dict:
    """For a speech embedding model: the embedding graphs it was trained on (sha256, licence),
    which the runtime checks its own copies against."""
    if cfg.frontend.kind != "speech_embedding":
        return {}
    from kws.features import embedding

    return {"frontend_weights": {
        "files": {name: sha256_of(embedding.FILES / name) for name in embedding.GRAPHS},
        "source": "Google speech embedding, ONNX from openWakeWord 0.5.1",
        "license": "Apache-2.0"}}
