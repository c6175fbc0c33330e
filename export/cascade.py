"""``kws cascade FIRST VERIFIER -o OUT --config CFG``: a model whose events a verifier checks.

OUT is FIRST's files and manifest with VERIFIER's exported folder inside (``OUT/verifier``) and a
``"verifier"`` manifest section (:class:`kws.core.contract.VerifierSpec`, read by
:mod:`kws.runtime.cascade`). The first stage's gate thresholds are those its own calibration
table gives for ``gate_fa_per_hour``; the cascade is then run over the validation split of CFG
(the first stage's training config: the audio its calibration came from) and its DET curve gives
the cascade's calibration table and default thresholds (``--max-fa-per-hour 0.5``), as
``kws export`` calibrates a model. FIRST keeps its own thresholds and calibration: without the
verifier (``--no-verifier``, the microcontroller) it runs as before.

Written like an export: into a temporary folder beside OUT, ``model.json`` last, then renamed.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from kws.core.config import Config
from kws.core.contract import (
    MANIFEST,
    Manifest,
    ManifestError,
    check_model_files,
    load_manifest,
    parse,
)
from kws.core.folders import atomic_folder
from kws.core.timing import Timing
from kws.data import corpora
from kws.export.manifest import DEFAULT_FA_PER_HOUR, calibration_table, default_thresholds
from kws.features.cache import FeatureCache
from kws.metrics.evaluate import VAL_SNR_DB, evaluate, prepare_positives
from kws.runtime import OnnxModel
from kws.runtime.cascade import Verifier, cascade_track
from kws.runtime.detector import budget_thresholds

log = logging.getLogger(__name__)

VERIFIER_FOLDER = "verifier"


def build_cascade(first: Path, verifier: Path, cfg: Config, out: Path,
                  gate_fa_per_hour: float = 30.0, window_s: float = 2.0,
                  delay_s: float = 0.5) -> dict:
    """Write the cascade folder ``out`` (see the module docstring); its validation report.

    Raises:
        ManifestError: a folder is not an exported model, or the keywords differ.
        FileExistsError: ``out`` holds files and is not an exported model folder.
    """
    first_m, second_m = load_manifest(first), load_manifest(verifier)
    if first_m.keywords != second_m.keywords:
        raise ManifestError(f"{verifier}: keywords {list(second_m.keywords)} differ from "
                            f"{first}'s {list(first_m.keywords)}")
    if first_m.verifier is not None:
        raise ManifestError(f"{first}: already has a verifier; give its first stage alone")
    if out.exists() and not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not an exported model folder; choose a new "
                              "output folder")
    with atomic_folder(out) as work:
        for path in first.iterdir():  # model files, reference data (and a demo clip)
            if path.is_file() and path.name != MANIFEST:
                shutil.copy2(path, work / path.name)
        shutil.copytree(verifier, work / VERIFIER_FOLDER)
        spec = {"folder": VERIFIER_FOLDER,
                "gate": budget_thresholds(first_m, gate_fa_per_hour),
                "thresholds": dict(first_m.thresholds), "window_s": window_s,
                "delay_s": delay_s}
        raw = {**first_m.raw, "verifier": spec}
        report, det = validate(parse(work, raw), cfg)
        hours = report["negative_hours"]
        table = calibration_table(det, first_m.keywords)
        spec.update(
            thresholds=default_thresholds(table, hours, first_m.keywords),
            calibration=table, calibration_hours=hours,
            gate_fa_per_hour=gate_fa_per_hour,
            note=(f"validation split of the first stage's config: {hours:.3f} h of negative "
                  f"audio, positives mixed with noise at {VAL_SNR_DB:g} dB; thresholds: those "
                  f"of --max-fa-per-hour {DEFAULT_FA_PER_HOUR:g} for the cascade"),
            validation={kw: {t: p["miss_rate"] for t, p in v["at_fa_per_hour"].items()}
                        for kw, v in report["keywords"].items()})
        check_model_files(parse(work, raw))
        (work / MANIFEST).write_text(json.dumps(raw, indent=2))
    return report


def validate(manifest: Manifest, cfg: Config) -> tuple[dict, object]:
    """(report, DET) of the cascade ``manifest`` on ``cfg``'s validation split."""
    if tuple(cfg.model.keywords) != manifest.keywords:
        raise ValueError(f"the config's keywords {list(cfg.model.keywords)} are not the model's "
                         f"{list(manifest.keywords)}")
    model, second = OnnxModel(manifest), Verifier(manifest)
    cached = FeatureCache(manifest.frontend)
    val = corpora.load_split(corpora.collect(cfg), "val", manifest.keywords,
                             cfg.frontend.sample_rate)
    positives = prepare_positives(val.positives, manifest.keywords, corpora.load_noise(cfg),
                                  VAL_SNR_DB, seed=cfg.train.seed)
    report, det, _ = evaluate(
        lambda wave: cascade_track(second, model.score_features(cached(wave)), wave,
                                   manifest.rule),
        Timing.of(manifest.frontend, manifest.step_frames), manifest.keywords, positives,
        val.negatives, second.rule)
    return report, det
