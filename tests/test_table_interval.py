"""benchmarks/table_interval.py: the zero-shot headline over rounds, with its interval."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from kws.metrics.det import default_thresholds
from kws.metrics.scores import Scores

ROOT = Path(__file__).resolve().parents[1]
GRID = default_thresholds()


def round_folder(folder: Path, misses: dict[str, float]) -> None:
    """A zero_shot.py round whose phrases miss the given shares of 100 clips (nothing fires on
    the negatives, so every budget keeps the lowest threshold)."""
    table = {}
    for phrase, miss in misses.items():
        name = phrase.replace(" ", "_")
        peaks = np.where(np.arange(100) < round(100 * miss), 0.001, 0.9)[:, None]
        scores = Scores(np.array([name]), peaks, np.zeros(100, np.int64),
                        np.array([f"s{i // 5}" for i in range(100)]),
                        np.array([f"n/{i}.flac" for i in range(20)]), np.full(20, 900.0),
                        np.array([f"p{i // 2}" for i in range(20)]),
                        np.zeros((20, len(GRID), 1), np.int32), GRID)
        out = folder / name / "eval" / f"0-{name}-model-model.int8.onnx"
        out.mkdir(parents=True)
        scores.save(out / "scores.npz")
        table[phrase] = {"tuning": phrase == "computer", "miss_rate": {"0.5": miss}}
    (folder / "zero_shot.json").write_text(json.dumps(table))


def run(*folders: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/table_interval.py", *map(str, folders)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_median_of_means_over_rounds_with_an_interval_around_it(tmp_path):
    round_folder(tmp_path / "a", {"alexa": 0.1, "snowboy": 0.2, "hey chatterbox": 0.3,
                                  "computer": 0.5})
    round_folder(tmp_path / "b", {"alexa": 0.3, "snowboy": 0.2, "hey chatterbox": 0.1,
                                  "computer": 0.7})
    proc = run(tmp_path / "a", tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    assert "| computer (tuning) | 2 | 60.0 / 60.0 / 60.0% |" in proc.stdout
    assert "| hey chatterbox | 2 | 20.0 / 20.0 / 20.0% |" in proc.stdout
    line = proc.stdout.splitlines()[-1]
    assert line.startswith("median over the 3 untouched phrases of their means: 20.0 / 20.0 / "
                           "20.0% at 0.1 / 0.5 / 1 FA/h; 95% interval at 0.5 FA/h ")
    low, high = (float(x) for x in line.split("at 0.5 FA/h ")[1].split("%")[0].split("-"))
    assert 5 < low < 20 < high < 35


def test_a_round_without_scores_is_named(tmp_path):
    round_folder(tmp_path / "a", {"alexa": 0.1})
    for f in (tmp_path / "a").rglob("scores.npz"):
        f.unlink()
    proc = run(tmp_path / "a")
    assert proc.returncode != 0
    assert "0 scores.npz for 'alexa', expected one" in proc.stderr
    assert "no zero_shot.json" in run(tmp_path / "missing").stderr
