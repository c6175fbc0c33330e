"""Harness: label files, labelled-stream metrics, fake and real peer engines, the table."""

import numpy as np
import pytest

from kws.core.audio import float32_to_int16
from kws.core.timing import Timing
from kws.eval.harness import parse_labels
from kws.eval.report import markdown_table
from kws.metrics.det import stream_counts
from kws.metrics.evaluate import evaluate_stream


def test_label_file_parsing(tmp_path):
    good = tmp_path / "labels.txt"
    good.write_text("# alexa positions\n1.5, 2.25\n\n10,11.0  # second\n20.0\t21.5\n")
    assert parse_labels(good) == [(1.5, 2.25), (10.0, 11.0), (20.0, 21.5)]
    bad = tmp_path / "bad.txt"
    bad.write_text("1, 2\n3; 4\n")
    with pytest.raises(ValueError, match=r"bad\.txt:2: expected 'start, end' in seconds, got "
                                         r"'3; 4'"):
        parse_labels(bad)
    bad.write_text("1, 2\n\n5, 4\n")
    with pytest.raises(ValueError, match=r"bad\.txt:3: need 0 <= start < end, got 5.0, 4.0"):
        parse_labels(bad)
    bad.write_text("1, 2, 3\n")
    with pytest.raises(ValueError, match=r"bad\.txt:1"):
        parse_labels(bad)


def test_stream_counts_by_hand():
    times = np.arange(100) * 0.1  # a step every 100 ms
    track = np.zeros(100)
    track[[12, 13, 55, 70, 71]] = [0.9, 0.95, 0.6, 0.9, 0.3]
    labels = [(1.0, 1.2), (3.0, 3.5), (6.0, 6.5)]
    # threshold 0.5: events 12 (hit label 0; 13 suppressed by refractory 5), 55 (5.5 s: after
    # label 1's window 3.0-4.5 s, before label 2: FA),
    # 70 (hit label 2: 7.0 <= 6.5 + 1.0); threshold 0.92: 13 only (hit)
    hits, false = stream_counts(track, times, labels, np.array([0.5, 0.92, 0.99]),
                                refractory=5, after_s=1.0)
    assert hits.tolist() == [2, 1, 0] and false.tolist() == [1, 0, 0]


def fake_scorer(wave):
    """One score per 30 ms: 0.9 where the audio is loud, else 0.01."""
    n = (1 + (len(wave) - 400) // 160) // 3
    loud = np.array([np.abs(wave[i * 480:(i + 1) * 480]).max(initial=0) > 0.3 for i in range(n)])
    return np.where(loud, 0.9, 0.01).astype(np.float32)[:, None]


def test_evaluate_stream_with_a_fake_engine():
    wave = np.zeros(16000 * 60, np.float32)
    labels = [(5.0, 5.5), (20.0, 20.5), (40.0, 40.5)]
    for start, _ in labels[:2]:  # the engine hears the first two keywords...
        wave[int(start * 16000):int((start + 0.3) * 16000)] = 0.5
    wave[50 * 16000:int(50.2 * 16000)] = 0.5  # ...and one thing that is not a keyword
    report, det = evaluate_stream(fake_scorer, Timing(3), "kw", 0, "s.wav", wave, labels)
    point = report["keywords"]["kw"]["at_fa_per_hour"]["1"]
    # at 0.5: 1 false alarm in (60 - 1.5) s of non-keyword audio = 61.5 FA/h, 1 of 3 missed
    half = int(np.flatnonzero(det.thresholds == 0.5)[0])
    assert det.fa_per_hour[half, 0] == pytest.approx(3600 / 58.5)
    assert det.miss_rate[half, 0] == pytest.approx(1 / 3)
    assert point["miss_rate"] == 1.0  # 1 FA/h needs a threshold above 0.9: nothing fires
    assert [fa["time_s"] for fa in report["false_alarms"]] == []
    table = markdown_table([dict(report, engine="fake")])
    # 58.5 s of negatives cannot resolve 0.1-1 FA/h: every column is marked
    assert "| fake | kw | 3 | 100.0%* | 100.0%* | 100.0%* |" in table
    assert "cannot resolve 0.1, 0.5, 1 FA/h" in table
    assert "[low, high]" not in table  # one recording: nothing to redraw, no interval
    with pytest.raises(ValueError, match="lists no keyword"):
        evaluate_stream(fake_scorer, Timing(3), "kw", 0, "s.wav", wave, [])


def test_peer_spec_errors():
    from kws.peers import peer_streams

    with pytest.raises(ValueError, match=r"peer 'nope:alexa': expected ENGINE:KEYWORD"):
        peer_streams("nope:alexa")
    with pytest.raises(ValueError, match="expected ENGINE:KEYWORD"):
        peer_streams("microwakeword")


@pytest.mark.parametrize("engine, step_s", [("microwakeword", 0.03), ("openwakeword", 0.08)])
def test_real_peer_adapters(engine, step_s):
    module = {"microwakeword": "pymicro_wakeword", "openwakeword": "openwakeword"}[engine]
    pytest.importorskip(module, reason=f"{engine} is not installed (kws[peers] extra)")
    from kws.eval.engines import load_engine
    from kws.peers import PeerUnavailable, peer_streams

    peer = load_engine(f"{engine}:alexa")
    assert peer.keywords == ("alexa",) and peer.timing.step_s == pytest.approx(step_s)
    rng = np.random.default_rng(0)
    wave = (0.01 * rng.standard_normal(16000 * 3)).astype(np.float32)
    scores = peer.scorer(wave)
    assert scores.shape[1] == 1 and abs(len(scores) - 3 / step_s) <= 3
    assert 0 <= scores.min() and scores.max() < 0.5  # quiet noise is not alexa
    stream, parts = peer_streams(f"{engine}:alexa")[0](), []
    pcm = float32_to_int16(wave)
    for i in range(0, len(pcm), 700):  # chunked input gives the same track
        parts.append(stream.accept(pcm[i:i + 700]))
    np.testing.assert_allclose(np.concatenate(parts), scores, atol=1e-5)
    with pytest.raises(PeerUnavailable, match="no bundled model for 'nope'"):
        load_engine(f"{engine}:nope")


def test_eval_cli_on_a_labelled_stream(tiny_run, tiny_export, tmp_path):
    import json
    import subprocess
    import sys

    import soundfile

    from kws.core.audio import load_audio

    root = tiny_run[0]
    gap = np.zeros(16000 * 3, np.float32)
    parts, labels, t = [], [], 0.0
    for i in (30, 31, 32):
        clip = load_audio(root / "keywords" / "up" / f"{i}.wav")
        parts += [gap, clip]
        labels.append((t + 3.0, t + 3.0 + len(clip) / 16000))
        t += 3.0 + len(clip) / 16000
    parts.append(load_audio(root / "negatives" / "spk05-1-5.wav"))
    soundfile.write(tmp_path / "stream.wav", np.concatenate(parts), 16000)
    (tmp_path / "labels.txt").write_text("".join(f"{a:.3f}, {b:.3f}\n" for a, b in labels))
    out = tmp_path / "eval"
    proc = subprocess.run([sys.executable, "-m", "kws.cli", "eval", "--model", str(tiny_export),
                           "--stream", str(tmp_path / "stream.wav"), "--labels",
                           str(tmp_path / "labels.txt"), "--keyword", "up", "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    name = f"{tiny_export.name}-model.int8.onnx"  # the model's folder and file
    report = json.loads((out / f"0-{name}" / "report.json").read_text())
    assert report["positive_clips"] == {"up": 3} and report["stream"].endswith("stream.wav")
    assert f"| {name} | up | 3 |" in (out / "summary.md").read_text()
    assert report["decision"] == {"smoothing_steps": 1, "min_steps": 1, "refractory_s": 2.0}
    proc = subprocess.run([sys.executable, "-m", "kws.cli", "eval", "--model", str(tiny_export),
                           "--stream", str(tmp_path / "stream.wav"), "--labels",
                           str(tmp_path / "labels.txt"), "--keyword", "up", "--smoothing", "3",
                           "--min-steps", "2", "-o", str(out)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    smoothed = json.loads((out / f"0-{name}" / "report.json").read_text())
    assert smoothed["decision"] == {"smoothing_steps": 3, "min_steps": 2, "refractory_s": 2.0}
    assert "scores averaged over 3 steps, at the threshold for 2 steps in a row" in \
        (out / "summary.md").read_text()
    # a smoothed track never peaks higher than the raw one
    assert smoothed["keywords"]["up"]["at_fa_per_hour"]["1"]["threshold"] <= \
        report["keywords"]["up"]["at_fa_per_hour"]["1"]["threshold"]
    proc = subprocess.run([sys.executable, "-m", "kws.cli", "eval", "--model", str(tiny_export),
                           "--stream", str(tmp_path / "stream.wav"), "--keyword", "up"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--stream needs --labels FILE and --keyword NAME" in proc.stderr


def test_excluded_folders_never_give_negatives(tiny_run):
    """--exclude: the config split's files under a folder are left out of the negatives."""
    from kws.core.config import load_config
    from kws.eval.harness import EvalOptions, gather_audio

    root = tiny_run[0]
    cfg = load_config(root / "tiny.toml")
    everything = gather_audio(EvalOptions(("m",)), ("up", "down"), cfg)
    assert any(p.parent.name == "negatives" for p, _ in everything[1])
    opts = EvalOptions(("m",), negatives=(root / "noise",), exclude=(root / "negatives",))
    _, negatives, _, sources = gather_audio(opts, ("up", "down"), cfg)
    assert [p.name for p, _ in negatives] == ["white.wav"]  # --negatives folders stay
    assert sources["excluded"] == [str(root / "negatives")]
