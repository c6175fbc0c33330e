"""The bootstrap interval of a miss rate at a false-alarm budget (kws.metrics.interval)."""

import numpy as np
import pytest

from kws.metrics.det import default_thresholds, det_from_counts, file_event_counts
from kws.metrics.interval import miss_intervals, redraws

GRID = default_thresholds()


def negatives(n_files: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Events per file and threshold of one-keyword tracks with a few loud moments, and each
    file's seconds (a track step is 80 ms)."""
    tracks = []
    for _ in range(n_files):
        track = rng.uniform(0, 0.5, (750, 1))  # 60 s
        track[rng.integers(750, size=3), 0] = rng.beta(8, 2, 3)  # rare high scores
        tracks.append(track)
    return file_event_counts(tracks, GRID, refractory=25)[:, :, 0], np.full(n_files, 60.0)


def test_a_miss_rate_that_only_the_clips_move_is_binomial():
    """No negative ever fires: every redraw keeps the lowest threshold, and 50 of 200 clips
    lie below it, so the interval is the binomial one, 25% +- 1.96 sqrt(0.25 * 0.75 / 200)."""
    peaks = np.r_[np.full(50, 0.001), np.full(150, 0.9)]
    counts, seconds = np.zeros((30, len(GRID))), np.full(30, 600.0)
    (low, high), = miss_intervals(peaks, counts, seconds, GRID, [0.5])
    half = 1.96 * np.sqrt(0.25 * 0.75 / 200)
    assert low == pytest.approx(0.25 - half, abs=0.012)
    assert high == pytest.approx(0.25 + half, abs=0.012)


def test_the_interval_holds_the_figure_and_narrows_with_four_times_the_audio():
    rng = np.random.default_rng(0)
    peaks = rng.beta(5, 1.5, 300)
    counts, seconds = negatives(240, rng)  # 4 h
    det = det_from_counts([peaks], counts.sum(axis=0)[:, None], seconds.sum() / 3600, GRID)
    targets = (0.5, 1.0)
    intervals = miss_intervals(peaks, counts, seconds, GRID, targets)
    more = miss_intervals(np.tile(peaks, 4), np.tile(counts, (4, 1)), np.tile(seconds, 4),
                          GRID, targets)
    for target, (low, high), (low4, high4) in zip(targets, intervals, more):
        miss = det.operating_point(0, target)[1]
        assert low <= miss <= high and low4 <= miss <= high4
        assert 0 < high4 - low4 < 0.7 * (high - low)  # about half: the square root of 4
    assert miss_intervals(peaks, counts, seconds, GRID, targets) == intervals  # seeded
    assert miss_intervals(peaks, counts, seconds, GRID, targets, seed=1) != intervals


def test_no_clips_no_interval_and_bad_input_is_named():
    counts, seconds = np.zeros((2, len(GRID))), np.full(2, 60.0)
    assert miss_intervals(np.array([]), counts, seconds, GRID, [0.5, 1]) == [None, None]
    peaks = np.array([0.5])
    with pytest.raises(ValueError, match="interval level 1.5: must be between 0 and 1"):
        miss_intervals(peaks, counts, seconds, GRID, [0.5], level=1.5)
    with pytest.raises(ValueError, match="resamples 0: at least 1"):
        miss_intervals(peaks, counts, seconds, GRID, [0.5], resamples=0)
    with pytest.raises(ValueError, match=r"budgets \[0.5, 0\] FA/h: each must be > 0"):
        miss_intervals(peaks, counts, seconds, GRID, [0.5, 0])
    with pytest.raises(ValueError, match=r"file_counts of shape \(2, 3\)"):
        miss_intervals(peaks, np.zeros((2, 3)), seconds, GRID, [0.5])
    with pytest.raises(ValueError, match="negative recordings of 0.0 s"):
        miss_intervals(peaks, counts, np.array([60.0, 0.0]), GRID, [0.5])


def test_a_speaker_is_redrawn_whole():
    """Ten clips from each of 20 speakers, five of whom are never heard: by speaker the miss
    rate is a share of 20 voices, 25% +- 1.96 sqrt(0.25 * 0.75 / 20), three times as wide as
    if the 200 clips were independent."""
    speakers = np.repeat([f"s{i}" for i in range(20)], 10)
    peaks = np.where(np.isin(speakers, ["s0", "s1", "s2", "s3", "s4"]), 0.001, 0.9)
    counts, seconds = np.zeros((30, len(GRID))), np.full(30, 600.0)
    (low, high), = miss_intervals(peaks, counts, seconds, GRID, [0.5], clip_speakers=speakers)
    half = 1.96 * np.sqrt(0.25 * 0.75 / 20)
    assert low == pytest.approx(0.25 - half, abs=0.05)
    assert high == pytest.approx(0.25 + half, abs=0.05)
    drawn = redraws(np.random.default_rng(0), 200, speakers, 50)
    assert drawn.shape == (50, 200) and np.all(drawn.sum(axis=1) % 10 == 0)
    assert np.all(drawn.reshape(50, 20, 10) == drawn.reshape(50, 20, 10)[:, :, :1])
    with pytest.raises(ValueError, match="3 speaker labels for 200 items"):
        redraws(np.random.default_rng(0), 200, ["a", "b", "c"], 5)
