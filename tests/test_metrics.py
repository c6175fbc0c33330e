"""Metric code on synthetic score tracks with answers worked out by hand."""

import numpy as np
import pytest

from kws.core.decision import events
from kws.core.timing import step_end_seconds
from kws.metrics.det import Det, count_events, det_curve, miss_rates, summarize_delays


def test_events_respect_refractory_and_rearm():
    track = np.array([0, .9, .9, .9, 0, 0, .9, 0, .9, .9])
    # re-armed only below the threshold: one event per run of steps above it
    assert events(track, 0.5, refractory=1).tolist() == [1, 6, 8]
    assert events(track, 0.5, refractory=3).tolist() == [1, 6, 9]
    assert events(track, 0.5, refractory=10).tolist() == [1]
    assert events(track, 0.95, refractory=3).tolist() == []
    with pytest.raises(ValueError, match="refractory must be >= 1 step, got 0"):
        events(track, 0.5, 0)


def test_count_events_per_threshold_and_keyword():
    a = np.array([[0.2, 0.0], [0.6, 0.0], [0.0, 0.7], [0.9, 0.0]])
    b = np.array([[0.0, 0.95], [0.0, 0.0]])
    counts = count_events([a, b], np.array([0.1, 0.5, 0.8, 0.99]), refractory=1)
    # keyword 0: >=0.1: runs 0-1, 3 -> 2; >=0.5: 1, 3 -> 2; >=0.8: 3 -> 1; >=0.99: 0
    # keyword 1: >=0.1: a2, b0 -> 2; >=0.5: 2; >=0.8: b0 -> 1; >=0.99: 0
    assert counts.tolist() == [[2, 2], [2, 2], [1, 1], [0, 0]]


def test_miss_rates_by_hand():
    peaks = np.array([0.2, 0.5, 0.9, 0.95])
    np.testing.assert_allclose(miss_rates(peaks, np.array([0.1, 0.5, 0.91, 0.99])),
                               [0.0, 0.25, 0.75, 1.0])


def test_det_curve_fa_per_hour_and_operating_point():
    # two keywords; 30 minutes of negatives with 2 events at 0.5 and 1 event at 0.8 for kw 0
    steps = 60000
    neg = np.zeros((steps, 2))
    neg[100, 0], neg[5000, 0] = 0.6, 0.85
    det = det_curve([np.array([0.9, 0.7, 0.3, 0.95]), np.array([0.99, 0.99])], [neg],
                    negative_hours=0.5, refractory=10, thresholds=np.array([0.5, 0.8, 0.9]))
    np.testing.assert_allclose(det.fa_per_hour[:, 0], [4.0, 2.0, 0.0])
    np.testing.assert_allclose(det.fa_per_hour[:, 1], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(det.miss_rate[:, 0], [0.25, 0.5, 0.5])
    assert det.operating_point(0, 2.0) == (0.8, 0.5, 2.0)
    assert det.operating_point(0, 0.5) == (0.9, 0.5, 0.0)
    assert det.operating_point(1, 0.1) == (0.5, 0.0, 0.0)


def test_default_grid_separates_scores_crowded_below_one():
    # an ensemble's false alarm at 0.9996 and keywords at 0.99985 / 0.99991: the budget of no
    # false alarm must find a threshold between them, not jump to one above every keyword
    neg = np.zeros((1000, 1))
    neg[10, 0] = 0.9996
    det = det_curve([np.array([0.99985, 0.99991, 0.5])], [neg], negative_hours=1.0,
                    refractory=10)
    assert (np.diff(det.thresholds) > 0).all() and det.thresholds[-1] == 0.99999
    threshold, miss, fa = det.operating_point(0, 0.5)
    assert 0.9996 < threshold <= 0.99985
    assert (miss, fa) == (pytest.approx(1 / 3), 0.0)


def test_det_is_monotone_on_random_tracks():
    rng = np.random.default_rng(1)
    neg = [rng.random((3000, 3)) ** 8 for _ in range(3)]
    pos = [rng.random(50) for _ in range(3)]
    det = det_curve(pos, neg, negative_hours=0.25, refractory=5)
    assert (np.diff(det.fa_per_hour, axis=0) <= 0).all()
    assert (np.diff(det.miss_rate, axis=0) >= 0).all()


def test_det_needs_negative_audio():
    with pytest.raises(ValueError, match="negative audio must last > 0 hours"):
        det_curve([np.ones(2)], [], 0.0, 1)


def test_step_end_time_and_delay_summary():
    # step 0 of 3 frames ends when frame 2 ends: 2 * 10 ms + 25 ms
    assert step_end_seconds(0, 3, 0.010, 0.025) == pytest.approx(0.045)
    assert step_end_seconds(9, 3, 0.010, 0.025) == pytest.approx(0.315)
    s = summarize_delays([0.1, 0.2, 0.3, 0.4, 1.0])
    assert s["median"] == pytest.approx(0.3) and s["count"] == 5
    assert s["p95"] == pytest.approx(0.88)
    assert summarize_delays([]) == {"median": None, "p95": None, "count": 0}


def test_det_dataclass_is_plain():
    det = Det(np.array([0.5]), np.zeros((1, 1)), np.zeros((1, 1)))
    assert det.operating_point(0, 0.5) == (0.5, 0.0, 0.0)


def test_nan_scores_never_count_as_detections():
    """kws eval once reported 0.0% missed on NaN scores while its confusion table said every
    clip was missed: a NaN score now never reaches a threshold, in the miss rate either."""
    from kws.core.timing import Timing
    from kws.eval.report import markdown_table
    from kws.metrics.evaluate import PositiveClip, evaluate

    def nan_scorer(wave):
        return np.full((len(wave) // 480, 1), np.nan, np.float32)

    clips = [PositiveClip(f"c{i}", 0, np.zeros(32000, np.float32), 0.5, 1.0) for i in range(2)]
    negatives = [("n", np.zeros(16000 * 60, np.float32))]
    report, det, _ = evaluate(nan_scorer, Timing(3), ("kw",), clips, negatives)
    assert np.all(det.miss_rate == 1.0) and np.all(det.fa_per_hour == 0.0)
    assert all(p["miss_rate"] == 1.0 for p in report["keywords"]["kw"]["at_fa_per_hour"].values())
    assert report["confusion"]["kw"]["missed"] == 2
    # every redraw misses both clips too; the table prints the interval and says what it is
    assert all(p["miss_rate_95"] == [1.0, 1.0]
               for p in report["keywords"]["kw"]["at_fa_per_hour"].values())
    table = markdown_table([dict(report, engine="nan")])
    assert "| nan | kw | 2 | 100.0% [100.0, 100.0]* |" in table
    assert "[low, high]: the 95% interval of the miss rate over 1000 redraws" in table
