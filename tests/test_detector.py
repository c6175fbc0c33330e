"""The detector on synthetic score tracks (it never sees audio)."""

import numpy as np
import pytest

from kws.metrics import decision_track, events
from kws.runtime.detector import Detection, Detector, DetectorConfig, threshold_for_budget

KW = ("a", "b")


def det(cfg=DetectorConfig(), thresholds=None):
    return Detector(KW, thresholds or {"a": 0.5, "b": 0.8}, cfg, step_frames=3)


def track(steps, hits):
    """(steps, 2) zeros with {(step, col): value}."""
    x = np.zeros((steps, 2), np.float32)
    for (i, k), v in hits.items():
        x[i, k] = v
    return x


def test_one_event_per_crossing_with_refractory_and_timing():
    # 2 s refractory = 67 steps of 30 ms
    scores = track(200, {(10, 0): 0.9, (11, 0): 0.9, (50, 0): 0.9, (100, 0): 0.7, (120, 1): 0.79})
    out = det().process(scores, 0)
    assert [(d.keyword, d.score) for d in out] == [("a", pytest.approx(0.9)), ("a", pytest.approx(0.7))]
    # step 10 ends at (11 * 3 - 1) * 10 ms + 25 ms
    assert out[0].time_s == pytest.approx(0.345) and out[1].time_s == pytest.approx(3.045)


def test_matches_the_evaluation_event_rule():
    rng = np.random.default_rng(0)
    scores = (rng.random((3000, 2)) ** 6).astype(np.float32)
    d = Detector(KW, {"a": 0.6, "b": 0.6}, DetectorConfig(refractory_s=0.3))
    got = d.process(scores, 0)
    for k, kw in enumerate(KW):
        expected = events(scores[:, k], 0.6, refractory=10)
        assert [round(x.time_s, 3) for x in got if x.keyword == kw] == \
            [round(d.time_of(s), 3) for s in expected]


@pytest.mark.parametrize("smoothing, min_steps", [(1, 1), (3, 1), (1, 3), (4, 2)])
def test_decision_track_gives_the_detector_events(smoothing, min_steps):
    """kws eval --smoothing/--min-steps scores through decision_track: same events as detect."""
    rng = np.random.default_rng(smoothing * 10 + min_steps)
    scores = (rng.random((3000, 2)) ** 3).astype(np.float32)
    cfg = DetectorConfig(refractory_s=0.3, smoothing_steps=smoothing, min_steps=min_steps)
    d = Detector(KW, {"a": 0.55, "b": 0.45}, cfg)
    got = d.process(scores, 0)
    track = decision_track(scores, smoothing, min_steps)
    for k, (kw, thr) in enumerate([("a", 0.55), ("b", 0.45)]):
        expected = [round(d.time_of(s), 3) for s in events(track[:, k], thr, refractory=10)]
        assert [round(x.time_s, 3) for x in got if x.keyword == kw] == expected
        assert len(expected) > 10


def test_decision_track_definition_and_errors():
    scores = np.array([[0.2], [0.8], [0.8], [0.2]], np.float32)
    np.testing.assert_allclose(decision_track(scores, 2, 1)[:, 0], [0.1, 0.5, 0.8, 0.5], atol=1e-6)
    np.testing.assert_allclose(decision_track(scores, 1, 2)[:, 0], [0.0, 0.2, 0.8, 0.2], atol=1e-6)
    with pytest.raises(ValueError, match=r"smoothing_steps=0, min_steps=1; allowed: >= 1"):
        decision_track(scores, 0, 1)


def test_blocks_of_any_size_give_the_same_events():
    rng = np.random.default_rng(1)
    scores = (rng.random((500, 2)) ** 4).astype(np.float32)
    cfg = DetectorConfig(refractory_s=0.5, smoothing_steps=3, min_steps=2)
    whole = det(cfg).process(scores, 0)
    d, parts, start = det(cfg), [], 0
    for size in [1, 7, 13, 1, 100, 50, 328]:
        parts += d.process(scores[start:start + size], start)
        start += size
    assert start == 500 and parts == whole and len(whole) > 3


def test_min_steps_and_smoothing():
    scores = track(20, {(5, 0): 0.9, (10, 0): 0.9, (11, 0): 0.9})
    assert [d.time_s for d in det(DetectorConfig(min_steps=2)).process(scores, 0)] == \
        [det().time_of(11)]
    # moving average of 2: a single 0.9 step gives 0.45 < 0.5, two in a row give 0.9
    out = det(DetectorConfig(smoothing_steps=2)).process(scores, 0)
    assert len(out) == 1 and out[0].score == pytest.approx(0.9)


def test_start_is_where_the_score_began_to_rise():
    scores = track(20, {(3, 0): 0.3, (4, 0): 0.4, (5, 0): 0.9, (8, 0): 0.1})
    (d,) = det().process(scores, 100)
    assert d == Detection("a", pytest.approx(0.9), det().time_of(105), det().time_of(103))


def test_threshold_for_a_false_alarm_budget():
    table = {"threshold": [0.1, 0.5, 0.9, 0.99], "fa_per_hour": [9.0, 2.0, 0.4, 0.0]}
    assert threshold_for_budget(table, 0.5) == 0.9
    assert threshold_for_budget(table, 2.0) == 0.5
    assert threshold_for_budget(table, 0.0) == 0.99
    assert threshold_for_budget({"threshold": [0.1, 0.5], "fa_per_hour": [9, 3]}, 1) == 0.5


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match=r"threshold for 'a' is 1.5; allowed: 0 < threshold <= 1"):
        DetectorConfig(thresholds={"a": 1.5})
    with pytest.raises(ValueError, match=r"max_fa_per_hour is -1; allowed: > 0"):
        DetectorConfig(max_fa_per_hour=-1)
    with pytest.raises(ValueError, match=r"smoothing_steps=0"):
        DetectorConfig(smoothing_steps=0)
