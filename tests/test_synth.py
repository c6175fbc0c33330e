"""Synthetic keyword speech: engines, renderings, rejection, confusables, the train flow."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from kws.synth import Voice, broken, confusable_texts, keyword_name, render, vtlp

needs_espeak = pytest.mark.skipif(not shutil.which("espeak-ng"),
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")


def test_broken_renderings_are_named():
    sr = 16000
    assert broken(np.zeros(sr, np.float32)) == "silent"
    assert broken(np.ones(sr, np.float32)) == "clipped"
    assert broken(0.1 * np.ones(1000, np.float32)).startswith("length 0.06 s")
    assert broken((0.1 * np.sin(np.arange(sr) / 5)).astype(np.float32)) is None


def test_vtlp_keeps_length_and_moves_formants():
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    up = vtlp(tone, 1.1)
    assert len(up) == len(tone)
    peak = np.argmax(np.abs(np.fft.rfft(up[2000:-2000])))
    assert 1050 < peak * 16000 / 12000 < 1150  # 1 kHz moved by ~10 %


def test_keyword_names():
    assert keyword_name("Smart  Mirror") == "smart_mirror"
    with pytest.raises(ValueError, match="use words of letters and digits"):
        keyword_name("hey/you")


@needs_espeak
def test_confusables_never_contain_the_phrase():
    rng = np.random.default_rng(0)
    single = confusable_texts("computer", rng, 20)
    assert len(single) == 20 and all("computer" not in t for t in single)
    assert all(t.startswith("[[") for t in single)  # phoneme edits of k@mpj'u:t3
    double = confusable_texts("smart mirror", rng, 30)
    assert "smart" in double and "mirror" in double
    assert not any("smart mirror" in t for t in double)


@needs_espeak
def test_render_and_engine_errors(monkeypatch):
    wave = render(Voice("espeak-ng", "en-us", 150, 50), "computer")
    assert wave.dtype == np.float32 and 0.3 < len(wave) / 16000 < 2.0
    with pytest.raises(ValueError, match="engine 'sam' is not one of"):
        Voice("sam", "x").command("hi", None)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RuntimeError, match=r"espeak-ng is not installed \(apt-get install "
                                           r"espeak-ng\)"):
        render(Voice("espeak-ng", "en-us"), "computer")


@needs_espeak
def test_kws_synth_writes_clips_manifest_and_report(tmp_path):
    out = tmp_path / "s"
    proc = subprocess.run([sys.executable, "-m", "kws.cli", "synth", "smart mirror", "-o",
                           str(out), "--count", "12", "--confusables", "8"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["made"]["positive"] + sum(report["rejected"].values()) >= 12
    assert report["made"]["positive"] >= 10 and report["made"]["confusable"] >= 6
    assert "espeak-ng" in report["engines"]
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert {x["label"] for x in lines} == {"smart mirror", "none"}
    assert all((out / x["path"]).is_file() for x in lines)


@needs_espeak
def test_train_from_a_phrase_uses_no_real_recording(tmp_path):
    pytest.importorskip("torch", reason="training needs the train extra")
    from kws.config import load_config
    from kws.synth import synthetic_config
    from tests.synthetic import make_corpus, write_config

    root = make_corpus(tmp_path / "corpus")
    base = load_config(write_config(root, epochs=1))
    cfg = synthetic_config(base, "smart mirror", tmp_path / "synth", count=24)
    assert cfg.model.keywords == ("smart_mirror",)
    assert cfg.data.keyword_dirs == {"smart_mirror": (str((tmp_path / "synth" / "positive")
                                                          .resolve()),)}
    assert cfg.data.negative_dirs[-1].endswith("confusable")
    from kws.train import train

    result = train(cfg, tmp_path / "run", progress=False)
    assert result["splits"]["smart_mirror"]["train"] > 0
