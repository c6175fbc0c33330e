"""Export: graph vs torch, int8, manifest contents, verification bounds, bad manifests."""

import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from kws.core.contract import FLOAT_FILE, INT8_FILE, MANIFEST, ManifestError, load_manifest
from kws.runtime import model_rule

pytest.importorskip("onnx", reason="export needs onnx (train/dev extra)")


def test_export_writes_all_files_and_a_complete_manifest(tiny_export):
    names = {p.name for p in tiny_export.iterdir()}
    assert {FLOAT_FILE, INT8_FILE, MANIFEST, "verify.npz"} <= names
    m = load_manifest(tiny_export).raw
    assert m["keywords"] == ["up", "down"] and m["step_frames"] == 3 and m["step_s"] == 0.03
    assert m["state_shape"] == [1, 1, 16] and m["opset"] == 17
    assert set(m["files"]) == {FLOAT_FILE, INT8_FILE}
    assert all(len(f["sha256"]) == 64 for f in m["files"].values())
    for kw in ("up", "down"):
        cal = m["calibration"][kw]
        assert len(cal["threshold"]) == len(cal["fa_per_hour"]) == len(cal["miss_rate"]) > 100
        # the default is --max-fa-per-hour 0.5's threshold; seconds of audio cannot show 0.5
        # FA/h, so it is the lowest with no false alarm on the calibration audio (nor above)
        i = cal["threshold"].index(m["thresholds"][kw])
        assert not any(cal["fa_per_hour"][i:]) and (i == 0 or cal["fa_per_hour"][i - 1] > 0)
    assert model_rule(load_manifest(tiny_export), max_fa_per_hour=0.5).thresholds == \
        m["thresholds"]
    assert {s["license"] for s in m["data_sources"]} == {"unknown: check the source"}
    # the int8 change is compared at 0.5 FA/h, or where one false alarm on the validation audio
    # is allowed when that is more (here: seconds of audio)
    q = m["quantization"]
    assert q["at_fa_per_hour"] > 0.5
    assert q["at_fa_per_hour"] == pytest.approx(1 / m["calibration_hours"])
    assert isinstance(q["miss_rate_change"], float)


def test_default_thresholds_are_those_of_the_default_budget(tiny_run, tmp_path, monkeypatch,
                                                           caplog):
    """With a default budget the seconds of validation audio can show (1000 FA/h), the exported
    thresholds are those ``--max-fa-per-hour`` picks at 90% confidence, not the DET curve's
    plain operating point (which only asks the calibration rate to be within the budget); the
    export says which budget its thresholds are for."""
    from kws.core.decision import budget_index
    from kws.export.exporter import export_model

    monkeypatch.setattr("kws.export.manifest.DEFAULT_FA_PER_HOUR", 1000.0)
    with caplog.at_level("INFO"):
        export_model(tiny_run[1], tmp_path / "m")
    assert "default thresholds: a budget of 1000 false alarms per hour" in caplog.text
    m = load_manifest(tmp_path / "m")
    assert model_rule(m, max_fa_per_hour=1000.0).thresholds == m.thresholds
    plain = {kw: cal["threshold"][budget_index(cal["fa_per_hour"], 1000.0)]
             for kw, cal in m.calibration.items()}
    assert all(m.thresholds[kw] >= plain[kw] for kw in plain) and m.thresholds != plain


@pytest.mark.parametrize("path, licence", [
    ("../../shared/data/speechocean762", "CC-BY-4.0"),
    ("/usr/share/games/wesnoth/1.16/data/core/music", "GPL-2.0-or-later"),
    ("/home/me/runs/default/synth/train.jsonl",
     "generated speech; each engine's licence is in its report.json"),
    ("runs/ft/run/activations.jsonl", "that of the audio they were cut from"),
    ("/home/me/runs/mirror/synth/confusable",
     "generated speech; each engine's licence is in its report.json"),
    ("/home/me/my-recordings", "unknown: check the source"),
])
def test_every_corpus_of_the_default_config_has_its_licence(path, licence):
    from kws.export.manifest import license_of

    assert license_of(path)["license"] == licence


def test_data_sources_show_no_absolute_path_of_this_machine(tmp_path, monkeypatch):
    """Manifests of generated data (kws synth, kws mine) are absolute; a shipped model.json
    names them relative to the working folder or the home folder."""
    from kws.core.config import load_config
    from kws.export.manifest import data_sources
    from tests.synthetic import make_corpus, write_config

    root = make_corpus(tmp_path / "corpus")
    config = write_config(root)
    cfg = load_config(config)
    run = tmp_path / "work" / "runs" / "ft"
    run.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    inside_home = tmp_path / "home" / "runs" / "synth" / "train.jsonl"
    elsewhere = "/srv/data/mined/activations.jsonl"
    data = dataclasses.replace(cfg.data, manifests=(str(run / "activations.jsonl"),
                                                    str(inside_home), elsewhere))
    paths = [s["path"] for s in data_sources(dataclasses.replace(cfg, data=data))]
    assert paths[-3:] == ["runs/ft/activations.jsonl", "~/runs/synth/train.jsonl", elsewhere]
    assert all(not p.startswith(str(tmp_path)) for p in paths)


def test_int8_file_stores_every_weight_matrix_as_int8(tiny_export):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(tiny_export / INT8_FILE))
    dtypes = {i.name: numpy_helper.to_array(i).dtype for i in model.graph.initializer}
    for name in ("proj_w", "ih_w", "hh_w", "out_w"):
        assert dtypes[f"{name}_int8"] == np.int8
        assert name not in dtypes  # no float copy left
    assert (tiny_export / INT8_FILE).stat().st_size < (tiny_export / FLOAT_FILE).stat().st_size


def test_quantize_columns_error_is_half_a_step():
    from kws.export.quantize import quantize_columns

    w = np.random.default_rng(0).standard_normal((50, 7)).astype(np.float32)
    w[:, 3] = 0.0
    q, scale = quantize_columns(w)
    assert q.dtype == np.int8 and np.abs(q).max() <= 127
    assert (np.abs(q * scale - w) <= scale / 2 + 1e-7).all()
    assert (q[:, 3] == 0).all()


def test_onnx_matches_torch_and_streams(tiny_run, tiny_export):
    torch = pytest.importorskip("torch")
    from kws.runtime import OnnxModel
    from kws.train.checkpoint import load_model

    model, _ = load_model(tiny_run[1])
    onnx_model = OnnxModel(tiny_export, FLOAT_FILE)
    feats = np.random.default_rng(1).standard_normal((120, 40)).astype(np.float32) * 3 - 8
    with torch.no_grad():
        expected = model.scores(torch.from_numpy(feats)[None])[0][0].numpy()
    got, state = onnx_model.step(feats, onnx_model.initial_state())
    assert got.shape == (40, 2) and state.shape == (1, 1, 16)
    assert np.abs(got - expected).max() <= 1e-4


def test_verify_cli_passes_and_reports_each_bound(tiny_export):
    proc = subprocess.run([sys.executable, "-m", "kws.cli", "verify", str(tiny_export)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for text in ("PASS onnx.checker: model.onnx", "float32 ONNX vs torch", "one step per call",
                 "int8 vs float32 validation miss rate", "verification passed"):
        assert text in proc.stdout


def test_verify_fails_loudly_on_a_broken_bound(tiny_export, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_export, bad)
    ref = dict(np.load(bad / "verify.npz"))
    ref["torch_scores"] = ref["torch_scores"] + 0.01  # as if torch and ONNX disagreed
    np.savez(bad / "verify.npz", **ref)
    proc = subprocess.run([sys.executable, "-m", "kws.cli", "verify", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "FAIL float32 ONNX vs torch" in proc.stdout and "verification FAILED" in proc.stdout


def test_miss_rate_change_over_a_point_fails(tiny_export):
    from kws.export.verify import verify_folder

    report = verify_folder(tiny_export, miss_delta=0.02, bound=0.01)
    rate = load_manifest(tiny_export).raw["quantization"]["at_fa_per_hour"]
    assert not report.ok
    assert (f"FAIL int8 vs float32 validation miss rate at {rate:.3g} FA/h: change +2.00 points "
            "(bound +1)" in str(report))


def test_the_int8_bound_allows_two_clips_of_a_small_validation_set(tiny_export, tmp_path):
    """1 point, or two clips of the keyword with the fewest validation positives (in the mean
    over keywords) where that is more: 157 clips give 1.27 points (a jarvis export of 2026-12-03
    failed at -1.27). Only a rise fails: int8 missing fewer (a hey chatterbox export of
    2026-12-05 failed at -1.96, bound 1.31) harms nothing. The export stores its bound; a stored
    one outside [1 point, 1] is not trusted."""
    from kws.export.verify import miss_bound, verify_folder

    assert miss_bound(157) == pytest.approx(2 / 157) and miss_bound(400) == 0.01
    assert miss_bound(40, keywords=4) == pytest.approx(2 / 160) and miss_bound(0) == 0.01
    assert verify_folder(tiny_export, miss_delta=2 / 157, bound=miss_bound(157)).ok
    assert not verify_folder(tiny_export, miss_delta=3 / 157, bound=miss_bound(157)).ok
    assert verify_folder(tiny_export, miss_delta=-3 / 153, bound=miss_bound(153)).ok
    assert not verify_folder(tiny_export, miss_delta=float("nan"), bound=miss_bound(153)).ok
    m = load_manifest(tiny_export).raw
    clips = m["validation"]["int8"]["positive_clips"]
    assert m["quantization"]["miss_rate_bound"] == \
        pytest.approx(miss_bound(min(clips.values()), len(clips)))
    for i, claim in enumerate((1e9, "0.5", 0.001)):
        copy = tmp_path / str(i)
        shutil.copytree(tiny_export, copy)
        edit(copy, lambda m: m["quantization"].update(miss_rate_change=0.03,
                                                      miss_rate_bound=claim))
        report = verify_folder(copy)
        assert not report.ok and "change +3.00 points (bound +1)" in str(report)
    for i, section in enumerate(({"miss_rate_change": "0"}, "0", [0.0])):  # no crash either
        copy = tmp_path / f"q{i}"
        shutil.copytree(tiny_export, copy)
        edit(copy, lambda m: m.update(quantization=section))
        report = verify_folder(copy)
        assert not report.ok and "FAIL int8 vs float32 validation miss rate: not measured" in \
            str(report)


def test_manifests_of_older_exports_keep_their_stored_change(tiny_export, tmp_path):
    """Before 2026-12-03 the change was stored as "miss_rate_change_at_0.5", always at 0.5 FA/h."""
    from kws.export.verify import verify_folder

    old = tmp_path / "old"
    shutil.copytree(tiny_export, old)
    m = json.loads((old / MANIFEST).read_text())
    m["quantization"] = {"method": m["quantization"]["method"], "miss_rate_change_at_0.5": 0.03}
    (old / MANIFEST).write_text(json.dumps(m))
    text = str(verify_folder(old))
    assert "FAIL int8 vs float32 validation miss rate at 0.5 FA/h: change +3.00 points" in text
    assert "taken from the manifest" in text


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / MANIFEST).unlink(), "manifest missing"),
    (lambda d: (d / MANIFEST).write_text("{not json"), "malformed JSON"),
    (lambda d: (d / MANIFEST).write_text("[1, 2]"), "expected a JSON object, got list"),
    (lambda d: edit(d, lambda m: m.pop("keywords")), r"missing key\(s\) \['keywords'\]"),
    (lambda d: edit(d, lambda m: m.update(format_version=99)),
     "format_version 99 is not supported"),
    (lambda d: (d / INT8_FILE).write_bytes((d / INT8_FILE).read_bytes()[:-10] + b"0" * 10),
     "model.int8.onnx: sha256 does not match"),
    (lambda d: (d / FLOAT_FILE).unlink(), "lists model.onnx, which is missing"),
    (lambda d: edit(d, lambda m: m["frontend"].update(n_mels=0)), r"frontend\.n_mels = 0"),
    (lambda d: edit(d, lambda m: m["files"].update({"../../etc/passwd": {"sha256": "0"}})),
     r"files = '\.\./\.\./etc/passwd' is not allowed; expected plain file names inside"),
    (lambda d: edit(d, lambda m: m["files"].update({"/etc/passwd": {"sha256": "0"}})),
     r"files = '/etc/passwd' is not allowed"),
    (lambda d: edit(d, lambda m: m.update(files=["model.onnx"])), r"files = \['model\.onnx'\]"),
    (lambda d: edit(d, lambda m: m["thresholds"].update(up=float("nan"))),
     r"threshold for 'up' = nan is not allowed"),
    (lambda d: edit(d, lambda m: m["thresholds"].update(up=-0.5)),
     r"threshold for 'up' = -0\.5 is not allowed; expected a number with 0 < threshold <= 1"),
    (lambda d: edit(d, lambda m: m.update(step_frames=0)), r"step_frames = 0 is not allowed"),
    (lambda d: edit(d, lambda m: m.update(state_shape=[1, 1, 10 ** 9])),
     r"state_shape = \[1, 1, 1000000000\] is not allowed; expected \[1, 1, hidden\]"),
    (lambda d: edit(d, lambda m: m.update(keywords=["up", "do\nwn"])), r"keywords = 'do\\nwn'"),
    (lambda d: edit(d, lambda m: m.update(decision={"refractory_s": float("inf")})),
     r"decision\.refractory_s = inf"),
    (lambda d: (d / MANIFEST).write_text("[" * 100000 + "]" * 100000), "malformed JSON"),
    (lambda d: edit(d, lambda m: m.update(calibration_hours=float("inf"))),
     r"calibration_hours = inf is not allowed; expected a finite number > 0"),
    (lambda d: edit(d, lambda m: m.update(calibration_hours=-1)), r"calibration_hours = -1"),
])
def test_bad_manifests_are_named(tiny_export, tmp_path, breakage, message):
    broken = tmp_path / "m"
    shutil.copytree(tiny_export, broken)
    breakage(broken)
    with pytest.raises(ManifestError, match=message):
        load_manifest(broken)


@pytest.mark.parametrize("validation, hours", [
    ({"int8": {"negative_hours": 0.25}}, 0.25),  # a model exported before the field
    ({"int8": {"negative_hours": -1}}, None),
    ({"int8": {"negative_hours": "0.25"}}, None),
    ({"int8": [0.25]}, None),
    ([{"int8": {"negative_hours": 0.25}}], None),
])
def test_calibration_hours_of_models_exported_before_the_field(tiny_export, tmp_path,
                                                               validation, hours):
    """Without ``calibration_hours`` the validation report's hours stand in when they are a
    number > 0; any other shape of that report means "not recorded", never a crash."""
    old = tmp_path / "m"
    shutil.copytree(tiny_export, old)
    edit(old, lambda m: (m.pop("calibration_hours"), m.update(validation=validation)))
    assert load_manifest(old).calibration_hours == hours


def test_a_budget_on_a_huge_calibration_claim_costs_no_memory(tiny_export, tmp_path):
    """A manifest claiming 10^300 hours of calibration audio: --max-fa-per-hour still answers
    at once (the count allowed is then taken from the normal approximation)."""
    from kws.runtime import model_rule

    huge = tmp_path / "m"
    shutil.copytree(tiny_export, huge)
    edit(huge, lambda m: m.update(calibration_hours=1e300))
    m = load_manifest(huge)
    rule = model_rule(m, max_fa_per_hour=1.0)  # every nonzero count is far above what is allowed
    assert all(not any(cal["fa_per_hour"][cal["threshold"].index(rule.thresholds[kw]):])
               for kw, cal in m.calibration.items())


def edit(folder, change):
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(keywords=["up", "down", "left"]),
     r"scores is \[1, 'steps', 2\] in the graph, \[1, 'steps', 3\] by the manifest"),
    (lambda m: m.update(state_shape=[1, 1, 32]),
     r"state is \[1, 1, 16\] in the graph, \[1, 1, 32\] by the manifest"),
])
def test_a_manifest_that_does_not_describe_its_graph_is_refused(tiny_export, tmp_path, change,
                                                                 message):
    from kws.runtime import OnnxModel

    broken = tmp_path / "m"
    shutil.copytree(tiny_export, broken)
    edit(broken, change)
    with pytest.raises(ManifestError, match=message):
        OnnxModel(broken)


def test_exports_are_atomic(tiny_run, tiny_export, tmp_path, monkeypatch):
    """Nothing loadable appears until verification passes: an interrupted export leaves
    nothing, a failed one leaves its files in OUT.failed without a loadable manifest, and an
    existing model survives a failed re-export."""
    import kws.export.exporter as exporter
    from kws.export.verify import Report

    out = tmp_path / "model"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(exporter, "validation_report", interrupted)
    with pytest.raises(KeyboardInterrupt):
        exporter.export_model(tiny_run[1], out)
    assert list(tmp_path.iterdir()) == []  # no model, no temporary folder
    monkeypatch.undo()

    failing = Report()
    failing.check(False, "a bound")
    monkeypatch.setattr(exporter, "verify_folder", lambda *a, **k: failing)
    with pytest.raises(exporter.VerificationError, match="FAIL a bound"):
        exporter.export_model(tiny_run[1], out)
    failed = tmp_path / "model.failed"
    assert not out.exists() and (failed / "model.unverified.json").is_file()
    assert not (failed / MANIFEST).exists()
    proc = subprocess.run([sys.executable, "-m", "kws", "detect", "--model", str(failed)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "manifest missing" in proc.stderr

    shutil.copytree(tiny_export, out)
    before = (out / MANIFEST).read_text()
    with pytest.raises(exporter.VerificationError):
        exporter.export_model(tiny_run[1], out)
    assert (out / MANIFEST).read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "model.failed"]
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not an exported model folder"):
        exporter.export_model(tiny_run[1], tmp_path / "junk")


def test_an_exported_model_can_be_rebuilt_for_training(tiny_export):
    """state_dict_from_export inverts the export (normalization folded): the rebuilt torch model
    scores like the float ONNX graph, so kws finetune can start from an export."""
    torch = pytest.importorskip("torch")
    from kws.core.checks import build
    from kws.core.config import ModelConfig
    from kws.export.graph import state_dict_from_export
    from kws.runtime import OnnxModel
    from kws.train.model import KeywordModel

    manifest = load_manifest(tiny_export)
    model = KeywordModel(build(ModelConfig, manifest.raw["model"], "model"), manifest.frontend)
    state = state_dict_from_export(tiny_export / FLOAT_FILE, manifest.frontend.n_mels)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
    feats = np.random.default_rng(2).standard_normal((90, 40)).astype(np.float32) * 3 - 8
    with torch.no_grad():
        rebuilt = model.eval().scores(torch.from_numpy(feats)[None])[0][0].numpy()
    onnx_model = OnnxModel(tiny_export, FLOAT_FILE)
    np.testing.assert_allclose(rebuilt, onnx_model.step(feats, onnx_model.initial_state())[0],
                               atol=1e-5)
