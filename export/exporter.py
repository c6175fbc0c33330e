"""``kws export RUN -o OUTDIR``: float + int8 ONNX, manifest, reference data, verification.

Steps: load the checkpoint -> build the float graph -> quantize -> measure both on the run's
validation split, read with the config's ``[decision]`` rule (the DET curve gives the calibration
table, and the table the default thresholds: those of ``--max-fa-per-hour 0.5``; the int8
miss-rate change is recorded, at 0.5 false alarms per hour or at one false alarm on the
validation audio where that is more) -> write ``model.json`` (with
that rule) -> verify.

The export is atomic: everything is written to a temporary folder beside ``OUTDIR``, where
``model.json`` is written last, after verification passed, and the folder is then renamed to
``OUTDIR``. So an interrupted or failed export never leaves a folder that ``kws detect`` would
load. A failed verification keeps the files in ``OUTDIR.failed`` for inspection, the manifest as
``model.unverified.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from kws.core.config import Config
from kws.core.contract import FLOAT_FILE, INT8_FILE, MANIFEST, Manifest, check_model_files, parse
from kws.core.timing import Timing
from kws.data import corpora
from kws.export.graph import build_graph, weights_from_model
from kws.export.manifest import (
    DEFAULT_FA_PER_HOUR,
    build_manifest,
    calibration_table,
    default_thresholds,
)
from kws.export.quantize import quantize_weights
from kws.export.verify import REFERENCE, Report, miss_bound, verify_folder
from kws.features import features
from kws.features.cache import FeatureCache
from kws.metrics.evaluate import VAL_SNR_DB, evaluate, prepare_positives
from kws.runtime import OnnxModel
from kws.train.checkpoint import load_model
from kws.train.model import count_parameters, macs_per_second

log = logging.getLogger(__name__)

REFERENCE_S = 6.0  # seconds of features compared between torch and ONNX
UNVERIFIED = "model.unverified.json"  # the manifest of a folder whose verification failed


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


def validation_report(manifest: Manifest | Path, file: str, cfg: Config, val: corpora.Clips,
                      noise: list[np.ndarray], featurize: FeatureCache):
    """(report, DET) of one exported file on the validation split, read with the run's rule;
    ``featurize`` turns audio into the model's features (the float32 and int8 files share one,
    so speech embeddings are computed once)."""
    model = OnnxModel(manifest, file)
    positives = prepare_positives(val.positives, cfg.model.keywords, noise, VAL_SNR_DB,
                                  seed=cfg.train.seed)
    report, det, _ = evaluate(lambda wave: model.score_features(featurize(wave)),
                              Timing.of(cfg.frontend, cfg.model.stack_frames),
                              cfg.model.keywords, positives, val.negatives, cfg.decision)
    return report, det


def export_model(source: str | Path, out_dir: str | Path) -> Report:
    """Export a run folder or checkpoint; see the module docstring.

    Raises:
        VerificationError: a verification bound is broken (files kept in ``OUTDIR.failed``).
        FileExistsError: ``out_dir`` holds files and is not an exported model folder.
    """
    out = Path(out_dir)
    if out.exists() and not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not an exported model folder; choose a new "
                              "output folder")
    model, cfg = load_model(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        report = write_files(model, cfg, work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if not report.ok:
        failed = out.with_name(out.name + ".failed")
        shutil.rmtree(failed, ignore_errors=True)
        work.rename(failed)
        raise VerificationError(f"{report}\nfiles kept for inspection in {failed}")
    if out.exists():
        shutil.rmtree(out)
    work.rename(out)
    return report


def write_files(model, cfg: Config, out: Path) -> Report:
    """Write and verify every file of the export into ``out``; the verification report."""
    float_graph = build_graph(weights_from_model(model), name="kws-" + "-".join(
        cfg.model.keywords))
    onnx.save(float_graph, str(out / FLOAT_FILE))
    onnx.save(quantize_weights(float_graph), str(out / INT8_FILE))

    utts = corpora.collect(cfg)
    val = corpora.load_split(utts, "val", cfg.model.keywords, cfg.frontend.sample_rate)
    noise = corpora.load_noise(cfg)
    clips = [w for kw in cfg.model.keywords for _, w in val.positives[kw]]
    feats = reference_features(clips + [w for _, w in val.negatives], cfg)
    with torch.no_grad():
        torch_scores, _ = model.scores(torch.from_numpy(feats)[None])
    np.savez_compressed(out / REFERENCE, features=feats, torch_scores=torch_scores[0].numpy())

    # a provisional manifest, in memory only, lets OnnxModel run the files for validation
    provisional = describe(out, build_manifest(out, cfg, [FLOAT_FILE, INT8_FILE], {}))
    featurize = FeatureCache(cfg.frontend)
    float_report, float_det = validation_report(provisional, FLOAT_FILE, cfg, val, noise, featurize)
    int8_report, det = validation_report(provisional, INT8_FILE, cfg, val, noise, featurize)
    hours = int8_report["negative_hours"]
    # compared where the validation audio allows one false alarm: below that rate the threshold
    # is set by its single highest-scoring negative, and a shift of that one score decides
    compared_at = max(DEFAULT_FA_PER_HOUR, 1 / hours)
    delta = float(np.mean([det.operating_point(k, compared_at)[1]
                           - float_det.operating_point(k, compared_at)[1]
                           for k in range(len(cfg.model.keywords))]))
    bound = miss_bound(min(len(val.positives[kw]) for kw in cfg.model.keywords),
                       len(cfg.model.keywords))
    table = calibration_table(det, cfg.model.keywords)
    extra = {
        "parameters": count_parameters(model),
        "macs_per_second": macs_per_second(cfg.model, cfg.frontend),
        "thresholds": default_thresholds(table, hours, cfg.model.keywords),
        "calibration": table,
        "calibration_hours": hours,
        "calibration_note": (f"validation split: {hours:.3f} h of negative audio (one false "
                             f"alarm = {1 / hours:.3g} FA/h), positives mixed with noise at "
                             f"{VAL_SNR_DB:g} dB; thresholds in 'thresholds' are those of "
                             f"--max-fa-per-hour {DEFAULT_FA_PER_HOUR:g}, on scores read with the "
                             "rule in 'decision'"),
        "validation": {"float32": summarize(float_report), "int8": summarize(int8_report)},
        "quantization": {"method": "weights (int8 per-column symmetric, float activations)",
                         "miss_rate_change": delta, "at_fa_per_hour": compared_at,
                         "miss_rate_bound": bound},
    }
    manifest = build_manifest(out, cfg, [FLOAT_FILE, INT8_FILE], extra)
    report = verify_folder(describe(out, manifest), miss_delta=delta, bound=bound)
    text = json.dumps(manifest, indent=2)
    (out / (MANIFEST if report.ok else UNVERIFIED)).write_text(text)
    return report


def describe(folder: Path, manifest: dict) -> Manifest:
    """The validated :class:`Manifest` of a manifest dict for the files in ``folder``."""
    described = parse(folder, manifest)
    check_model_files(described)
    return described


def summarize(report: dict) -> dict:
    """The validation figures the manifest keeps."""
    return {"negative_hours": report["negative_hours"],
            "positive_clips": report["positive_clips"],
            "miss_rate": {kw: {t: p["miss_rate"] for t, p in v["at_fa_per_hour"].items()}
                          for kw, v in report["keywords"].items()}}
