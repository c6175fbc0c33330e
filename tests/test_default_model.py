"""The bundled default model: its files verify, and it finds each keyword once in the demo."""

import json
import subprocess
import sys

import pytest

from kws.runtime import default_model_dir


def run(*args):
    return subprocess.run([sys.executable, "-m", "kws.cli", *args], capture_output=True,
                          text=True)


def test_demo_clip_gives_each_keyword_once_in_order():
    """Through the verifier: the first stage's rejected snowboy at 14.4 s (during "jarvis")
    must not silence the snowboy said 2 s later, and its first stage alone finds them too."""
    proc = run("detect", "--no-verifier")
    assert [json.loads(line)["keyword"] for line in proc.stdout.splitlines()] == \
        ["alexa", "computer", "jarvis", "snowboy"]
    proc = run("detect")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["keyword"] for e in events] == ["alexa", "computer", "jarvis", "snowboy"]
    times = [e["time_s"] for e in events]
    assert times == sorted(times) and times[0] > 3.0  # nothing fires on the first sentence


def test_info_describes_the_bundled_model():
    info = json.loads(run("info", "--json").stdout)  # the whole manifest
    assert info["keywords"] == ["alexa", "computer", "jarvis", "snowboy"]
    assert info["files"]["model.int8.onnx"]["bytes"] <= 100_000
    assert set(info["thresholds"]) == set(info["keywords"])
    assert "calibration" in info
    assert {s["license"] for s in info["data_sources"]} >= {"Apache-2.0", "CC-BY-4.0"}
    text = run("info").stdout  # a readable summary by default
    assert "keywords (default threshold): alexa (" in text and "snowboy (" in text
    assert "decision rule: raw scores; refractory 2 s; re-armed below the threshold" in text
    assert ("calibration: 2.76 h of negative audio (--max-fa-per-hour shown from 0.835 FA/h "
            "at 90% confidence)") in text
    assert "Picovoice wake-word-benchmark recordings (Apache-2.0)" in text
    assert not text.lstrip().startswith("{")


def test_bundled_model_passes_verification():
    pytest.importorskip("onnx", reason="kws verify reads the files with onnx")
    proc = run("verify", str(default_model_dir()))
    assert proc.returncode == 0, proc.stdout
    assert "verification passed" in proc.stdout


def test_firmware_for_the_default_model_matches_onnxruntime():
    pytest.importorskip("onnx", reason="the firmware bridge reads the int8 ONNX file with onnx")
    from pathlib import Path

    from kws.firmware.verify import verify_firmware
    from tests.conftest import SHARED

    clips = [default_model_dir() / "demo.flac"]
    alexa = SHARED / "wake-word-benchmark" / "alexa"
    if alexa.is_dir():  # real speech too when the shared data is there
        clips += [alexa / "150.flac", alexa / "170.flac",
                  next(Path(SHARED / "librispeech-samples" / "librispeech_test-other").rglob(
                      "*.flac"))]
    report = verify_firmware(default_model_dir(), clips)
    assert report.ok, str(report)


def test_bundled_model_streams_the_demo_like_the_whole_clip():
    # the bundled model uses the running mean frontend: its state must carry across chunks
    import numpy as np

    from kws.core.audio import load_audio
    from kws.runtime import OnnxModel

    model = OnnxModel(default_model_dir())
    assert model.manifest.frontend.mean_norm_ms > 0
    wave = load_audio(default_model_dir() / "demo.flac")
    whole = model.score_audio(wave)
    for chunk in (160, 333, 4000):
        stream = model.create_stream()
        parts = [stream.accept_waveform(wave[i:i + chunk]) for i in range(0, len(wave), chunk)]
        scores = np.concatenate(parts + [stream.flush()])
        assert scores.shape == whole.shape
        assert np.abs(scores - whole).max() <= 1e-4  # measured ~1e-6


def test_one_spoken_alexa_gives_one_event():
    """alexa/4.flac at threshold 0.05: the score crosses it over and over for 2 s after the
    word. A refractory period counted from the event would let it fire again 2 s later;
    counted from the last fall below the threshold (re-arming), it gives one event."""
    import numpy as np

    from kws.core.audio import load_audio
    from kws.runtime import OnnxModel
    from tests.conftest import shared_dir

    clip = shared_dir("wake-word-benchmark", "alexa") / "4.flac"
    model = OnnxModel(default_model_dir())
    alexa = model.score_audio(load_audio(clip))[:, 0]
    first = int(np.argmax(alexa >= 0.05))
    later = first + int(np.ceil(2.0 / model.manifest.step_s))
    assert (alexa[later:] >= 0.05).any()  # 2 s after the event: the old rule fired again
    proc = run("detect", str(clip), "--threshold", "alexa=0.05", "--no-verifier")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(e["keyword"], e["time_s"]) for e in events] == [("alexa", 1.005)]
