"""Runtime: chunk-size invariance, offline == streaming, int16 input, no torch, kws detect."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile
from scipy.stats import chi2, poisson

from kws.core.audio import float32_to_int16, load_audio
from kws.core.contract import INT8_FILE
from kws.core.decision import allowed_false_alarms, budget_resolution
from kws.runtime import OnnxModel, Spotter, model_rule

SCORE_TOL = 1e-5

# Makes torch and torchaudio unimportable in a child interpreter, as on a device without them.
BLOCK_TORCH = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = {"torch", "torchaudio"}
    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
    sys.meta_path.insert(0, _Block())
""")


@pytest.fixture(scope="module")
def clip(tiny_run):
    """Keyword clips from the synthetic corpus with noise between them (~6 s)."""
    root = tiny_run[0]
    parts = [load_audio(root / "keywords" / kw / f"{i}.wav") for kw, i in
             [("up", 31), ("down", 3), ("up", 35), ("down", 7)]]
    gap = np.zeros(8000, np.float32)
    return np.concatenate([x for p in parts for x in (p, gap)])


def run_stream(model, wave, chunk, thresholds=(("up", 0.3), ("down", 0.3))):
    spotter = Spotter(model, model_rule(model.manifest, dict(thresholds)))
    scores, found = [], []
    for i in range(0, len(wave), chunk):
        found += spotter.process(wave[i:i + chunk])
        scores.append(spotter.last_scores)
    found += spotter.flush()
    scores.append(spotter.last_scores)
    return np.concatenate(scores), found


def test_results_do_not_depend_on_chunk_size(tiny_export, clip):
    model = OnnxModel(tiny_export)
    ref_scores, ref_events = run_stream(model, clip, 16000)
    assert ref_scores.shape == ((1 + (len(clip) - 400) // 160) // 3, 2)
    assert len(ref_events) >= 2
    for chunk in (1, 160, 320, 1000):
        scores, found = run_stream(model, clip, chunk)
        assert scores.shape == ref_scores.shape
        assert np.abs(scores - ref_scores).max() <= SCORE_TOL
        assert same_events(found, ref_events)


def same_events(a, b):
    """Identical keywords and times; scores within SCORE_TOL."""
    return len(a) == len(b) and all(
        (x.keyword, x.time_s, x.start_s) == (y.keyword, y.time_s, y.start_s)
        and abs(x.score - y.score) <= SCORE_TOL for x, y in zip(a, b))


def test_stream_equals_offline_scoring_and_accepts_int16(tiny_export, clip):
    model = OnnxModel(tiny_export)
    offline = model.score_audio(clip)
    streamed, _ = run_stream(model, clip, 320)
    assert np.abs(streamed - offline[: len(streamed)]).max() <= SCORE_TOL
    pcm = float32_to_int16(clip)
    as_int, _ = run_stream(model, pcm, 320)
    as_float, _ = run_stream(model, pcm.astype(np.float32) / 32768, 320)
    np.testing.assert_array_equal(as_int, as_float)


def test_reset_forgets_audio_and_state(tiny_export, clip):
    model = OnnxModel(tiny_export)
    stream = model.create_stream()
    stream.accept_waveform(clip[:12345])
    stream.reset()
    fresh = model.create_stream()
    np.testing.assert_array_equal(stream.accept_waveform(clip), fresh.accept_waveform(clip))


@pytest.mark.parametrize("steps_per_call", [1, 2, 3])
def test_steps_per_call_changes_grouping_not_scores(tiny_export, clip, steps_per_call):
    model = OnnxModel(tiny_export)
    stream = model.create_stream(steps_per_call)
    outs = [stream.accept_waveform(clip[i:i + 320]) for i in range(0, len(clip), 320)]
    sizes = [len(o) for o in outs if len(o)]
    assert min(sizes) >= steps_per_call  # 20 ms chunks: the model runs every N steps
    assert len(sizes) == pytest.approx(sum(sizes) / steps_per_call, abs=1)
    scores = np.concatenate(outs + [stream.flush()])
    np.testing.assert_allclose(scores, model.score_audio(clip), atol=SCORE_TOL)
    with pytest.raises(ValueError, match="steps_per_call is 0; allowed: >= 1"):
        model.create_stream(0)


def test_runtime_imports_and_runs_without_torch(tiny_export, clip, tmp_path):
    wav = tmp_path / "clip.wav"
    soundfile.write(wav, clip, 16000)
    code = BLOCK_TORCH + textwrap.dedent(f"""
        import kws, kws.runtime, kws.core.audio, kws.features, kws.metrics.det, kws.apps.detect
        import kws.runtime.detector, kws.runtime.stream, kws.runtime.engine, kws.core.contract
        import kws.metrics.evaluate, kws.eval.engines, kws.eval.report, kws.apps.listen
        import kws.apps.bench, kws.apps.wyoming
        from kws.cli import main
        code = main(["detect", "--model", {str(tiny_export)!r}, {str(wav)!r},
                     "--threshold", "up=0.3", "--threshold", "down=0.3"])
        assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED], "torch was imported"
        sys.exit(code)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert '"keyword"' in proc.stdout


def test_training_commands_say_what_to_install_without_torch():
    code = BLOCK_TORCH + "from kws.cli import main; sys.exit(main(['train', 'x.toml']))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "pip install 'kws[train]'" in proc.stderr


def detect(*args):
    return subprocess.run([sys.executable, "-m", "kws.cli", "detect", *map(str, args)],
                          capture_output=True, text=True)


def test_detect_cli_events_scores_and_bad_files(tiny_export, clip, tmp_path):
    wav = tmp_path / "clip.wav"
    soundfile.write(wav, clip, 16000)
    out = tmp_path / "scores.npy"
    proc = detect("--model", tiny_export, wav, "--scores", out, "--threshold", "up=0.3",
                  "--threshold", "down=0.3")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    _, expected = run_stream(OnnxModel(tiny_export), clip, 1600)
    assert [(e["keyword"], e["time_s"]) for e in events] == \
        [(d.keyword, d.time_s) for d in expected]
    assert all(set(e) == {"file", "keyword", "score", "time_s", "start_s"} for e in events)
    scores = np.load(out)
    assert scores.dtype == np.float32 and scores.shape[1] == 2
    np.testing.assert_allclose(scores, OnnxModel(tiny_export).score_audio(clip)[:len(scores)],
                               atol=SCORE_TOL)

    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    proc = detect("--model", tiny_export, junk, wav, tmp_path / "missing.flac")
    assert proc.returncode == 1
    assert "junk.wav: unsupported format" in proc.stderr
    assert "missing.flac: no such file" in proc.stderr

    proc = detect("--model", tiny_export, wav, wav, "--scores", out)
    assert proc.returncode == 2 and "give exactly one FILE" in proc.stderr
    proc = detect("--model", tiny_export, wav, "--threshold", "nope=0.5")
    assert proc.returncode == 2 and "unknown keyword(s) ['nope']" in proc.stderr
    proc = detect("--model", tmp_path, wav)
    assert proc.returncode == 2 and "manifest missing" in proc.stderr


def test_max_fa_per_hour_uses_the_calibration_table_at_90_percent_confidence(tiny_export,
                                                                            caplog):
    """A budget picks the lowest calibrated threshold from which every higher one gave at most
    as many false alarms as a rate of the budget would exceed 90% of the time; a budget finer
    than the audio can show that way is warned about and gets the lowest threshold with no false
    alarm at all."""
    model = OnnxModel(tiny_export)
    table = model.manifest.calibration["up"]
    hours = model.manifest.calibration_hours
    assert hours == pytest.approx(model.manifest.raw["calibration_hours"]) and 0 < hours < 0.01
    rows = list(zip(table["threshold"], table["fa_per_hour"]))

    def lowest(ok):
        return min(t for i, (t, _) in enumerate(rows) if all(ok(fa) for _, fa in rows[i:]))

    budget = 1000.0
    allowed = allowed_false_alarms(budget, hours)
    assert poisson.cdf(allowed, budget * hours) <= 0.1 < poisson.cdf(allowed + 1, budget * hours)
    assert max(fa for _, fa in rows) * hours > allowed  # the table has thresholds to refuse
    rule = model_rule(model.manifest, max_fa_per_hour=budget)
    assert rule.thresholds["up"] == lowest(lambda fa: round(fa * hours) <= allowed)
    resolution = budget_resolution(hours)
    assert poisson.cdf(0, resolution * hours) == pytest.approx(0.1)
    with caplog.at_level("WARNING"):
        rule = model_rule(model.manifest, max_fa_per_hour=0.99 * resolution)
    assert rule.thresholds["up"] == lowest(lambda fa: fa == 0)
    assert f"a false-alarm budget of {0.99 * resolution:g} per hour is finer than the " \
           f"calibration audio can show at 90% confidence (its resolution is {resolution:.3g} " \
           f"FA/h ({hours:.3g} h of audio))" in caplog.text
    with pytest.raises(ValueError, match="max_fa_per_hour is -1; allowed: > 0"):
        model_rule(model.manifest, max_fa_per_hour=-1)


@pytest.mark.parametrize("count", [0, 1, 2, 5, 40])
def test_allowed_false_alarms_is_the_poisson_upper_confidence_bound(count):
    """Counts up to ``allowed_false_alarms(B, h)`` are exactly those whose 90% upper confidence
    bound on the rate (chi-square, Garwood) is within B."""
    hours = 2.757
    bound = chi2.ppf(0.9, 2 * count + 2) / 2 / hours
    assert allowed_false_alarms(bound * 1.001, hours) >= count
    below = allowed_false_alarms(bound * 0.999, hours)
    assert below is None if count == 0 else below == count - 1


def test_model_file_choice(tiny_export):
    assert OnnxModel(tiny_export).file == INT8_FILE
    with pytest.raises(ValueError, match=r"nope\.onnx is not one of the model's files"):
        OnnxModel(tiny_export, "nope.onnx")
