"""``kws export RUN -o OUTDIR``: float + int8 ONNX, manifest, reference data, verification.

Steps: load the checkpoint -> build the float graph -> quantize -> measure both on the run's
validation split, read with the config's ``[decision]`` rule (the DET curve gives the calibration
table and default thresholds; the int8 miss-rate change is recorded) -> write ``model.json`` (with
that rule) -> verify (raises on a broken bound).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import torch

from export.graph import build_graph, weights_from_model
from export.manifest import build_manifest, calibration_table
from export.quantize import quantize_weights
from export.verify import REFERENCE, Report, verify_folder
from kws import data
from kws.config import Config, to_dict
from kws.contract import FLOAT_FILE, INT8_FILE, MANIFEST
from kws.evaluate import evaluate, miss_at, prepare_positives
from kws.frontend import features
from kws.metrics import decided
from kws.model import count_parameters, macs_per_second
from kws.runtime.session import OnnxModel
from kws.train import VAL_SNR_DB, load_model, timing_of

log = logging.getLogger(__name__)

REFERENCE_S = 6.0  # seconds of features compared between torch and ONNX
DEFAULT_TARGET = 0.5


class VerificationError(RuntimeError):
    """An exported model broke a verification bound; the message is the full report."""


def reference_features(clips: list[np.ndarray], cfg: Config) -> np.ndarray:
    """``(frames, n_mels)`` features of ``REFERENCE_S`` seconds of real audio (clips
    concatenated): 600 log-mel frames, or 75 speech embeddings."""
    frames = int(round(REFERENCE_S * 1000 / cfg.frontend.hop_ms))
    wave = np.concatenate(clips) if clips else np.zeros(0, np.float32)
    feats = features(wave, cfg.frontend)[:frames]
    if len(feats) < frames:
        raise ValueError(f"need {frames} frames of validation audio for the reference, "
                         f"got {len(feats)}")
    return np.ascontiguousarray(feats)


def validation_report(folder: Path, file: str, cfg: Config, val: data.Clips, noise):
    model = OnnxModel(folder, file)
    positives = prepare_positives(val.positives, cfg.model.keywords, noise, VAL_SNR_DB,
                                  seed=cfg.train.seed)
    rule = cfg.decision
    return evaluate(decided(model.score_audio, rule.smoothing_steps, rule.min_steps),
                    timing_of(cfg), cfg.model.keywords, positives, val.negatives)


def export_model(source: str | Path, out_dir: str | Path) -> Report:
    """Export a run folder or checkpoint; see the module docstring.

    Raises:
        VerificationError: a verification bound is broken (files are kept for inspection).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, cfg = load_model(source)
    float_graph = build_graph(weights_from_model(model), name="kws-" + "-".join(
        cfg.model.keywords))
    onnx.save(float_graph, str(out / FLOAT_FILE))
    onnx.save(quantize_weights(float_graph), str(out / INT8_FILE))

    utts = data.collect(cfg)
    val = data.load_split(utts, "val", cfg.model.keywords, cfg.frontend.sample_rate)
    noise = data.load_noise(cfg)
    clips = [w for kw in cfg.model.keywords for _, w in val.positives[kw]]
    feats = reference_features(clips + [w for _, w in val.negatives], cfg)
    with torch.no_grad():
        torch_scores, _ = model.scores(torch.from_numpy(feats)[None])
    np.savez_compressed(out / REFERENCE, features=feats, torch_scores=torch_scores[0].numpy())

    # a provisional manifest lets OnnxModel load the files for the validation runs
    (out / MANIFEST).write_text(json.dumps(build_manifest(out, cfg, [FLOAT_FILE, INT8_FILE], {})))
    float_report, _ = validation_report(out, FLOAT_FILE, cfg, val, noise)
    int8_report, det = validation_report(out, INT8_FILE, cfg, val, noise)
    delta = miss_at(int8_report, DEFAULT_TARGET) - miss_at(float_report, DEFAULT_TARGET)
    extra = {
        "parameters": count_parameters(model),
        "macs_per_second": macs_per_second(cfg.model, cfg.frontend),
        "thresholds": {kw: v["operating_threshold"] for kw, v in int8_report["keywords"].items()},
        "calibration": calibration_table(det, cfg.model.keywords),
        "calibration_note": (f"validation split: {int8_report['negative_hours']:.3f} h of "
                             f"negative audio, positives mixed with noise at {VAL_SNR_DB:g} dB; "
                             "thresholds in 'thresholds' are at <= 0.5 false alarms/hour, "
                             "on scores read with the rule in 'decision'"),
        "decision": to_dict(cfg.decision),
        "validation": {"float32": summarize(float_report), "int8": summarize(int8_report)},
        "quantization": {"method": "weights (int8 per-column symmetric, float activations)",
                         "miss_rate_change_at_0.5": delta},
    }
    manifest = build_manifest(out, cfg, [FLOAT_FILE, INT8_FILE], extra)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    report = verify_folder(out, miss_delta=delta)
    if not report.ok:
        raise VerificationError(str(report))
    return report


def summarize(report: dict) -> dict:
    return {"negative_hours": report["negative_hours"],
            "positive_clips": report["positive_clips"],
            "miss_rate": {kw: {t: p["miss_rate"] for t, p in v["at_fa_per_hour"].items()}
                          for kw, v in report["keywords"].items()}}
