"""The model's decision rule ([decision] -> manifest "decision"): export calibrates with it and
detect, eval and the firmware bridge read it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kws.core.config import ConfigError, config_from_dict
from kws.core.contract import INT8_FILE, MANIFEST, ManifestError, load_manifest
from kws.core.decision import DecisionRule

RULE = {"smoothing_steps": 3, "min_steps": 1, "refractory_s": 2.0}


@pytest.fixture(scope="module")
def smoothed_export(tiny_run, tmp_path_factory):
    """The tiny run's weights with ``[decision] smoothing_steps = 3``, exported."""
    from kws.export.exporter import export_model
    from kws.train import checkpoint

    run = tmp_path_factory.mktemp("smoothed-run")
    state = checkpoint.read(tiny_run[1])
    state["config"]["decision"] = RULE
    checkpoint.save(run / "best.pt", state)
    out = tmp_path_factory.mktemp("smoothed-model")
    export_model(run, out)
    return out


def kws(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kws.cli", *map(str, args)],
                          capture_output=True, text=True, check=False)


def test_config_and_manifest_errors_name_the_value(tiny_export, tmp_path):
    with pytest.raises(ConfigError, match=r"decision\.smoothing_steps = 0 is not allowed; "
                                          r"expected an integer 1\.\.50"):
        config_from_dict({"decision": {"smoothing_steps": 0}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['window'\] in \[decision\]"):
        config_from_dict({"decision": {"window": 3}})
    broken = tmp_path / "m"
    shutil.copytree(tiny_export, broken)
    raw = json.loads((broken / MANIFEST).read_text())
    raw["decision"] = {"smoothing_steps": 2.5, "min_steps": 1}
    (broken / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match=r"decision\.smoothing_steps = 2\.5"):
        load_manifest(broken)


def test_export_records_the_rule_and_calibrates_with_it(tiny_export, smoothed_export):
    from kws.runtime import Detector, model_rule

    plain, smoothed = load_manifest(tiny_export), load_manifest(smoothed_export)
    assert plain.rule.settings() == DecisionRule().settings() and "decision" in plain.raw
    assert smoothed.rule.settings() == RULE and smoothed.raw["decision"] == RULE
    # same weights, so the same graphs; only the calibration differs
    assert smoothed.files[INT8_FILE]["sha256"] == plain.files[INT8_FILE]["sha256"]
    assert smoothed.calibration["up"]["fa_per_hour"] != plain.calibration["up"]["fa_per_hour"]
    assert Detector.from_manifest(smoothed).rule.smoothing_steps == 3
    assert Detector.from_manifest(smoothed, model_rule(smoothed, smoothing_steps=1)
                                  ).rule.smoothing_steps == 1
    assert Detector.from_manifest(plain).rule.smoothing_steps == 1


def test_detect_and_eval_apply_the_models_rule(tiny_run, tiny_export, smoothed_export, tmp_path):
    root = tiny_run[0]
    clip = root / "keywords" / "up" / "30.wav"
    fixed = ["--threshold", "up=0.2", "--threshold", "down=0.5"]  # the defaults differ
    own = kws("detect", "--model", smoothed_export, clip, *fixed)
    given = kws("detect", "--model", tiny_export, clip, *fixed, "--smoothing", 3)
    raw = kws("detect", "--model", tiny_export, clip, *fixed)
    assert own.returncode == given.returncode == raw.returncode == 0, own.stderr + given.stderr
    events = [json.loads(line) for line in own.stdout.splitlines()]
    assert any(e.get("keyword") == "up" for e in events), own.stdout
    assert own.stdout == given.stdout != raw.stdout

    reports = []
    for model, extra in ((smoothed_export, []), (tiny_export, ["--smoothing", 3])):
        out = tmp_path / f"eval{len(reports)}"
        proc = kws("eval", "--model", model, "--positive", f"up={root / 'keywords' / 'up'}",
                   "--negatives", root / "negatives", "-o", out, *extra)
        assert proc.returncode == 0, proc.stderr
        folder = out / f"0-{Path(model).name}-model.int8.onnx"
        reports.append(json.loads((folder / "report.json").read_text()))
        assert "Events: scores averaged over 3 steps; refractory 2 s; re-armed below the " \
            "threshold. Real-time" in (out / "summary.md").read_text()
    assert reports[0]["decision"] == reports[1]["decision"] == RULE
    assert reports[0]["keywords"] == reports[1]["keywords"]


def test_decided_scorer_smooths_and_checks_its_settings():
    from kws.metrics.evaluate import decided

    scores = np.array([[0.0], [0.9], [0.0], [np.nan]])
    np.testing.assert_array_equal(decided(lambda wave: scores, DecisionRule())(None).ravel(),
                                  [0.0, 0.9, 0.0, 0.0])  # NaN never fires: read as 0
    np.testing.assert_allclose(decided(lambda wave: scores[:3], DecisionRule(
        smoothing_steps=2))(None).ravel(), [0.0, 0.45, 0.45])
    with pytest.raises(ConfigError, match=r"decision\.smoothing_steps = 0"):
        DecisionRule(smoothing_steps=0)


def test_firmware_runs_the_models_rule(smoothed_export, tiny_run, tmp_path):
    """The C implements smoothing: a smoothed model is no longer refused, and its compiled C
    gives onnxruntime's scores and the Python rule's events on audio."""
    from kws.firmware.emit import emit
    from kws.firmware.verify import verify_firmware

    header = (emit(smoothed_export, tmp_path / "c") / "kws_model.h").read_text()
    assert "#define KWS_SMOOTHING_STEPS 3" in header and "#define KWS_MIN_STEPS 1" in header
    clip = tiny_run[0] / "keywords" / "up" / "30.wav"
    report = verify_firmware(smoothed_export, [clip])
    assert report.ok, str(report)
