"""The false-alarm loop: saved activations labelled with kws review, then kws finetune trains
on them, re-exports with a fresh calibration and reports before and after."""

import json
import subprocess
import sys

import numpy as np
import pytest

from kws.data.activations import read_activations, save_activation, write_label
from tests.synthetic import chirp, padded


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained long enough to find every held-out keyword (15 short epochs), with
    20 held-out positives and held-out negatives of its own: (config, run)."""
    pytest.importorskip("torch", reason="training needs the train extra")
    import soundfile

    from kws.core.config import load_config
    from kws.train.run import train
    from tests.synthetic import make_corpus, write_config

    root = make_corpus(tmp_path_factory.mktemp("ft-corpus"))
    rng = np.random.default_rng(9)
    held = root / "heldout"
    held.mkdir()
    for i in range(20):
        t = np.arange(int(rng.uniform(2, 4) * 16000)) / 16000
        soundfile.write(held / f"h{i}.wav", (0.2 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t))
                        .astype(np.float32), 16000)
    config = write_config(root, epochs=15, sequences=384)
    config.write_text(config.read_text().replace(
        "holdout = { up = [[30, 39]] }",
        'holdout = { up = [[30, 39]], down = [[30, 39]] }\neval_negative_dirs = ["heldout"]'))
    train(load_config(config), root / "run", progress=False)
    return config, root / "run"


@pytest.fixture(scope="module")
def activations(tmp_path_factory):
    """Eight half "up" chirps (the first half of the keyword: a confusable) saved as
    activations, six labelled false alarm by kws review, two left unlabelled."""
    folder = tmp_path_factory.mktemp("activations")
    rng = np.random.default_rng(5)
    for i in range(8):
        s = rng.uniform(0.8, 1.2)
        save_activation(folder, "up", 0.3, 1.0 + i, padded(chirp(300 * s, 900 * s, 0.3, rng), rng),
                        0.0, 16000)
    answers = "f\nf\nx\nf\ns\nf\nf\nf\n"  # x is not an answer: asked again
    proc = subprocess.run([sys.executable, "-m", "kws", "review", str(folder), "--no-play"],
                          input=answers, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "8 of 8 activations unlabelled" in proc.stdout
    assert "labelled 0 keyword, 6 false alarm; skipped 1" in proc.stdout
    return folder


def test_review_labels_and_lists(activations):
    labels = [a.label for a in read_activations(activations)]
    assert labels.count("false_alarm") == 6 and labels.count(None) == 2
    listing = subprocess.run([sys.executable, "-m", "kws", "review", str(activations), "--list"],
                             capture_output=True, text=True).stdout
    assert listing.count("- false_alarm") == 6 and listing.count("- unlabelled") == 2


def test_finetune_lowers_the_false_alarms_and_keeps_the_held_out_miss_rate(trained,
                                                                            activations,
                                                                            tmp_path):
    config, run = trained
    out = tmp_path / "ft"
    proc = subprocess.run([sys.executable, "-m", "kws", "finetune", str(run), "--negatives",
                           str(activations), "-o", "ft", "--epochs", "2", "--quiet"],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)  # relative -o
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "finetune.json").read_text())
    before, after = report["before"], report["after"]
    assert report["activations"] == {"false_alarm": 6, "keyword": 0}
    assert report["split"] == "val" and "Held out (val split)" in proc.stdout  # not test
    assert after["false_alarm_peaks"]["mean"] < before["false_alarm_peaks"]["mean"] - 0.02
    for kw in ("up", "down"):  # 10 held-out clips each, all found before: all found after
        assert before["at_own_thresholds"][kw]["miss_rate"] == 0.0
        assert abs(after["at_own_thresholds"][kw]["miss_rate"]
                   - before["at_own_thresholds"][kw]["miss_rate"]) <= 0.01
    assert (out / "model" / "model.json").is_file() and "| after | up |" in proc.stdout
    # a fresh calibration: the new export has its own table
    new = json.loads((out / "model" / "model.json").read_text())
    assert new["calibration_hours"] > 0 and set(new["calibration"]) == {"up", "down"}


def test_finetune_needs_labelled_false_alarms(tiny_run, tmp_path):
    empty = tmp_path / "none"
    save_activation(empty, "up", 0.9, 1.0, np.zeros(8000, np.float32), 0.0, 16000)
    write_label(read_activations(empty)[0], "keyword")
    proc = subprocess.run([sys.executable, "-m", "kws", "finetune", str(tiny_run[1]),
                           "--negatives", str(empty), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "no activation is labelled false_alarm" in proc.stderr


def test_mine_saves_the_highest_scoring_training_negatives(trained, tmp_path):
    config, run = trained
    out = tmp_path / "mined"
    proc = subprocess.run([sys.executable, "-m", "kws", "mine", str(run), "-o", str(out),
                           "--count", "5", "--quiet"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    mined = read_activations(out)
    assert len(mined) == 5 and {a.label for a in mined} == {"false_alarm"}
    assert {a.keyword for a in mined} <= {"up", "down"}
    scores = sorted((a.score for a in mined), reverse=True)
    assert scores[0] > 0.05 and all(a.wav_path.is_file() for a in mined)
    proc = subprocess.run([sys.executable, "-m", "kws", "mine", str(run), "-o", str(out),
                           "--split", "test"], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice: 'test'" in proc.stderr


def test_activations_in_the_same_millisecond_are_all_kept(tmp_path, monkeypatch):
    """File names carry the time to the millisecond; a second activation at the same time gets
    its own name instead of overwriting the first."""
    from datetime import datetime, timezone

    import kws.data.activations as module

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 12, 2, 5, 29, 17, 43000, tzinfo=timezone.utc)

    monkeypatch.setattr(module, "datetime", Frozen)
    clips = [np.full(1600, v, np.float32) for v in (0.1, 0.2, 0.3)]
    paths = [save_activation(tmp_path, "up", 0.3, 1.0 + i, c, 0.0, 16000)
             for i, c in enumerate(clips)]
    assert [p.name for p in paths] == ["20261202T052917.043-up-0.30.json",
                                       "20261202T052917.043-up-0.30-2.json",
                                       "20261202T052917.043-up-0.30-3.json"]
    saved = read_activations(tmp_path)
    assert len(saved) == 3 and sorted(a.time_s for a in saved) == [1.0, 2.0, 3.0]
