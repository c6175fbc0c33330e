"""A first stage with a verifier: calibration (kws cascade), streaming == offline, the apps use
it, --no-verifier does not, and a hostile verifier section is refused."""

import json
import shutil

import numpy as np
import pytest

from kws.core.audio import load_audio
from kws.core.config import load_config
from kws.core.contract import MANIFEST, ManifestError, load_manifest
from kws.core.decision import events
from kws.runtime import OnnxModel, Spotter
from kws.runtime.cascade import Verifier, cascade_track
from tests.test_runtime import detect


@pytest.fixture(scope="module")
def cascade(tiny_run, tiny_export, tmp_path_factory):
    """The tiny model checked by itself (a log-mel verifier: any exported model can verify),
    the first stage gated at its 100 FA/h thresholds."""
    from kws.export.cascade import build_cascade

    out = tmp_path_factory.mktemp("cascade") / "model"
    report = build_cascade(tiny_export, tiny_export, load_config(tiny_run[0] / "tiny.toml"), out,
                           gate_fa_per_hour=100.0, window_s=1.5, delay_s=0.21)
    return out, report


@pytest.fixture(scope="module")
def stream(tiny_run):
    """Keywords and negatives of the synthetic corpus in a row (~25 s)."""
    root = tiny_run[0]
    parts = [load_audio(root / "keywords" / kw / f"{i}.wav") for kw, i in
             [("up", 31), ("down", 3), ("up", 35), ("down", 7), ("up", 2), ("down", 36)]]
    parts += [load_audio(p) for p in sorted((root / "negatives").iterdir())[:6]]
    gap = np.zeros(6000, np.float32)
    return np.concatenate([x for p in parts for x in (p, gap)])


def test_cascade_folder_manifest_and_calibration(cascade, tiny_export):
    folder, report = cascade
    m = load_manifest(folder)
    spec = m.verifier
    first = load_manifest(tiny_export)
    assert spec.folder == "verifier" and load_manifest(folder / "verifier").keywords == m.keywords
    assert (spec.window_s, spec.delay_s) == (1.5, 0.21)
    assert m.thresholds == first.thresholds  # the first stage alone runs as before
    assert all(spec.gate[kw] <= first.thresholds[kw] for kw in m.keywords)
    assert spec.calibration_hours == pytest.approx(report["negative_hours"])
    assert set(spec.calibration) == set(m.keywords)
    # the defaults are the thresholds of --max-fa-per-hour 0.5: seconds of validation audio
    # cannot show 0.5 FA/h, so each is the lowest with no false alarm on it (and above that)
    assert Verifier(m, max_fa_per_hour=0.5).rule.thresholds == spec.thresholds
    for kw, cal in spec.calibration.items():
        i = cal["threshold"].index(spec.thresholds[kw])
        assert not any(cal["fa_per_hour"][i:]) and (i == 0 or cal["fa_per_hour"][i - 1] > 0)


def run(spotter, wave, chunk):
    found = []
    for i in range(0, len(wave), chunk):
        found += spotter.process(wave[i:i + chunk])
    return found + spotter.flush()


def test_verify_checks_both_stages(cascade, tmp_path):
    pytest.importorskip("onnx", reason="kws verify reads the files with onnx")
    from kws.export.verify import verify_folder

    report = verify_folder(cascade[0])
    assert report.ok and any(line.startswith("PASS verifier: onnx.checker")
                             for line in report.lines)
    folder = tmp_path / "model"
    shutil.copytree(cascade[0], folder)
    np.savez(folder / "verifier" / "verify.npz", features=np.zeros((600, 40), np.float32),
             torch_scores=np.ones((200, 2), np.float32))
    report = verify_folder(folder)
    assert not report.ok and any(line.startswith("FAIL verifier: float32 ONNX vs torch")
                                 for line in report.lines)


@pytest.mark.parametrize("chunk", [320, 1600, 16000])
def test_streaming_cascade_equals_the_offline_track(cascade, stream, chunk):
    """The streaming verification gives exactly the events the rule finds on the offline cascade
    track, at any chunk size; the verifier rejects some of the first stage's events."""
    folder, _ = cascade
    model = OnnxModel(folder)
    thresholds = {"up": 0.6, "down": 0.6}
    verifier = Verifier(model.manifest, thresholds)
    got = run(Spotter(model, None, None, verifier), stream, chunk)

    track = cascade_track(verifier, model.score_audio(stream), stream, model.manifest.rule)
    rule = verifier.rule
    refractory = rule.refractory_steps(verifier.timing.step_s)
    expected = sorted((float(verifier.timing.end_of(int(s))), kw)
                      for k, kw in enumerate(model.keywords)
                      for s in events(track[:, k], thresholds[kw], refractory))
    assert [(round(d.time_s, 3), d.keyword) for d in got] == \
        [(round(t, 3), kw) for t, kw in expected]
    gated = run(Spotter(model, verifier.gate(model.manifest.rule)), stream, chunk)
    assert 0 < len(got) < len(gated)
    for d in got:  # each event is a first-stage event, 0.21 s later, scored by the verifier
        assert any(g.keyword == d.keyword and abs(g.time_s + 0.21 - d.time_s) < 1e-3
                   for g in gated)
        assert d.score >= 0.6


def test_the_verification_keeps_the_recent_audio(cascade):
    """Whatever the chunk sizes (one longer than the buffer included), the buffer holds the
    stream's last samples, at least ``keep`` of them once that many arrived."""
    verification = Verifier(load_manifest(cascade[0])).new_stream()
    keep = verification.keep
    signal = np.arange(400_000, dtype=np.float32)
    at = 0
    for size in [*np.random.default_rng(0).integers(1, 5000, 60), keep + 7, 3, keep, 1]:
        verification.add(signal[at:at + size])
        at += size
        recent = verification.buffer[:verification.filled]
        assert verification.received == at and len(recent) >= min(at, keep)
        np.testing.assert_array_equal(recent, signal[at - len(recent):at])


def test_detect_uses_the_verifier_unless_told(cascade, stream, tmp_path):
    import soundfile

    folder, _ = cascade
    wav = tmp_path / "stream.wav"
    soundfile.write(wav, stream, 16000)
    both = detect("--model", folder, wav, "--threshold", "up=0.6", "--threshold", "down=0.6")
    first = detect("--model", folder, wav, "--no-verifier", "--threshold", "up=0.1",
                   "--threshold", "down=0.1")
    assert both.returncode == 0 and first.returncode == 0, both.stderr + first.stderr
    model = OnnxModel(folder)
    verifier = Verifier(model.manifest, {"up": 0.6, "down": 0.6})
    expected = run(Spotter(model, None, None, verifier), stream, 1600)
    assert [(e["keyword"], e["time_s"]) for e in map(json.loads, both.stdout.splitlines())] == \
        [(d.keyword, d.time_s) for d in expected]
    plain = [json.loads(line) for line in first.stdout.splitlines()]
    assert len(plain) > len(expected)  # at 0.1, without a verifier, more fire
    # --refractory applies to the reported events: 30 s leaves one event per keyword
    slow = detect("--model", folder, wav, "--threshold", "up=0.6", "--threshold", "down=0.6",
                  "--refractory", "30")
    heard = [json.loads(line)["keyword"] for line in slow.stdout.splitlines()]
    assert sorted(heard) == sorted(set(d.keyword for d in expected)) and len(expected) > len(heard)


def test_eval_reads_the_cascade_or_the_first_stage(cascade, tiny_run, tmp_path):
    from kws.eval.harness import EvalOptions, run_eval

    folder, _ = cascade
    cfg, noise = tiny_run[0] / "tiny.toml", tiny_run[0] / "noise"
    both, = run_eval(EvalOptions((str(folder),), cfg, "val", noise=noise, out=tmp_path / "a"))
    first, = run_eval(EvalOptions((str(folder),), cfg, "val", noise=noise, out=tmp_path / "b",
                                  verifier=False))
    assert both["engine"].endswith("+ verifier") and first["engine"].endswith("(first stage)")
    # the validation split, mixed as kws cascade mixes it: the figures it calibrated on
    _, report = cascade
    assert both["keywords"] == json.loads(json.dumps(report["keywords"]))
    with pytest.raises(ValueError, match="need --no-verifier"):
        run_eval(EvalOptions((str(folder),), cfg, "val", smoothing_steps=2, out=tmp_path / "c"))


@pytest.mark.parametrize("field, value, message", [
    ("folder", "../tiny-model", "verifier.folder"),
    ("window_s", 100, "verifier.window_s"),
    ("gate", {"up": 0.5}, "verifier.gate"),
    ("thresholds", {"up": 0.5, "down": 2}, "verifier.thresholds"),
])
def test_a_bad_verifier_section_is_refused(cascade, tmp_path, field, value, message):
    folder = tmp_path / "model"
    shutil.copytree(cascade[0], folder)
    raw = json.loads((folder / MANIFEST).read_text())
    raw["verifier"][field] = value
    (folder / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match=message):
        load_manifest(folder)


def test_a_verifier_with_other_keywords_is_refused(cascade, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(cascade[0], folder)
    raw = json.loads((folder / "verifier" / MANIFEST).read_text())
    raw["keywords"] = ["down", "up"]
    (folder / "verifier" / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="verifier's keywords"):
        Verifier(load_manifest(folder))
