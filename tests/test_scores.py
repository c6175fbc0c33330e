"""scores.npz: what an evaluation's figures come from, saved and read back untrusted."""

import numpy as np
import pytest

from kws.metrics.det import default_thresholds
from kws.metrics.scores import Scores


def example(n_clips: int = 40, n_files: int = 12) -> Scores:
    rng = np.random.default_rng(0)
    grid = default_thresholds()
    counts = (rng.uniform(size=(n_files, len(grid), 2)) > 0.99 - 0.5 * (grid < 0.3)[None, :, None])
    return Scores(keywords=np.array(["up", "down"]), peaks=rng.uniform(size=(n_clips, 2)),
                  labels=np.arange(n_clips) % 2,
                  clip_speakers=np.array([f"s{i // 4}" for i in range(n_clips)]),
                  files=np.array([f"n/{i}.flac" for i in range(n_files)]),
                  file_seconds=np.full(n_files, 300.0),
                  file_speakers=np.array([f"p{i // 3}" for i in range(n_files)]),
                  file_counts=counts.astype(np.int32), thresholds=grid)


def test_saved_scores_read_back_give_the_same_intervals(tmp_path):
    scores = example()
    scores.save(tmp_path / "scores.npz")
    again = Scores.load(tmp_path / "scores.npz")
    for name in ("keywords", "peaks", "labels", "clip_speakers", "files", "file_counts"):
        assert np.array_equal(getattr(again, name), getattr(scores, name))
    for k in (0, 1):
        assert again.intervals(k, (0.5, 1)) == scores.intervals(k, (0.5, 1))
        assert again.intervals(k, (0.5,))[0] is not None


def test_a_bad_scores_file_is_refused_by_name(tmp_path):
    good = {name: np.asarray(getattr(example(), name)) for name in Scores.__dataclass_fields__}
    cases = {
        "pickled.npz": dict(good, files=np.array([object()] * 12, dtype=object)),
        "missing.npz": {k: v for k, v in good.items() if k != "labels"},
        "text-peaks.npz": dict(good, peaks=np.full((40, 2), "x")),
        "short.npz": dict(good, file_seconds=np.ones(3)),
        "labels.npz": dict(good, labels=np.full(40, 7)),
    }
    expected = {"pickled.npz": "not a kws scores file", "missing.npz": r"no \['labels'\]",
                "text-peaks.npz": "'peaks' holds <U1",
                "short.npz": r"'file_seconds' has shape \(3,\); expected \(12,\)",
                "labels.npz": r"labels \[7\]: each must name one of the 2 keywords"}
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(ValueError, match=expected[name]):
            Scores.load(tmp_path / name)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "short.npz").read_bytes()[:300])
    for name in ("junk.npz", "cut.npz"):
        with pytest.raises(ValueError, match=f"{name}: not a kws scores file"):
            Scores.load(tmp_path / name)
