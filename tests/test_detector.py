"""The decision rule on synthetic score tracks: the streaming detector, the offline rule of the
metrics, smoothing, holding, refractory period and re-arming."""

import numpy as np
import pytest

from kws.core.checks import ConfigError
from kws.core.decision import DecisionRule, budget_index, decision_track, events
from kws.core.timing import Timing
from kws.runtime.detector import Detection, Detector

KW = ("a", "b")


def det(thresholds=None, **rule):
    return Detector(KW, DecisionRule(thresholds or {"a": 0.5, "b": 0.8}, **rule), Timing(3))


def track(steps, hits):
    """(steps, 2) zeros with {(step, col): value}."""
    x = np.zeros((steps, 2), np.float32)
    for (i, k), v in hits.items():
        x[i, k] = v
    return x


def test_one_event_per_crossing_with_refractory_and_timing():
    # 2 s refractory = 67 steps of 30 ms
    scores = track(200, {(10, 0): 0.9, (11, 0): 0.9, (50, 0): 0.9, (100, 0): 0.7, (120, 1): 0.79})
    out = det().process(scores)
    assert [(d.keyword, d.score) for d in out] == [("a", pytest.approx(0.9)),
                                                   ("a", pytest.approx(0.7))]
    # step 10 ends at (11 * 3 - 1) * 10 ms + 25 ms
    assert out[0].time_s == pytest.approx(0.345) and out[1].time_s == pytest.approx(3.045)


def test_a_score_held_high_fires_once_until_it_drops():
    """Re-arming: one spoken keyword whose score stays high through the refractory period gives
    one event (it used to give one per refractory period); the refractory period counts from
    when the score falls."""
    scores = track(500, {})
    scores[10:300, 0] = 0.9  # 8.7 s above the threshold
    scores[320:330, 0] = 0.9  # 20 steps after it fell: inside the refractory period
    scores[400:410, 0] = 0.9  # 70 steps after the last run that fired: a new event
    out = det().process(scores)
    assert [d.time_s for d in out] == [det().timing.end_of(10), det().timing.end_of(400)]
    # offline: the same rule
    assert events(scores[:, 0], 0.5, refractory=67).tolist() == [10, 400]


def test_matches_the_evaluation_event_rule():
    rng = np.random.default_rng(0)
    scores = (rng.random((3000, 2)) ** 6).astype(np.float32)
    d = det({"a": 0.6, "b": 0.6}, refractory_s=0.3)
    got = d.process(scores)
    for k, kw in enumerate(KW):
        expected = events(scores[:, k], 0.6, refractory=10)
        assert [round(x.time_s, 3) for x in got if x.keyword == kw] == \
            [round(d.timing.end_of(s), 3) for s in expected]
        assert len(expected) > 10


@pytest.mark.parametrize("smoothing, min_steps", [(1, 1), (3, 1), (1, 3), (4, 2)])
def test_decision_track_gives_the_detector_events(smoothing, min_steps):
    """kws eval --smoothing/--min-steps scores through decision_track: same events as detect."""
    rng = np.random.default_rng(smoothing * 10 + min_steps)
    scores = (rng.random((3000, 2)) ** 3).astype(np.float32)
    d = det({"a": 0.55, "b": 0.45}, refractory_s=0.3, smoothing_steps=smoothing,
            min_steps=min_steps)
    got = d.process(scores)
    decided = decision_track(scores, smoothing, min_steps)
    for k, (kw, thr) in enumerate([("a", 0.55), ("b", 0.45)]):
        expected = [round(d.timing.end_of(s), 3) for s in events(decided[:, k], thr, refractory=10)]
        assert [round(x.time_s, 3) for x in got if x.keyword == kw] == expected
        assert len(expected) > 10


def test_decision_track_definition_and_errors():
    scores = np.array([[0.2], [0.8], [0.8], [0.2]], np.float32)
    np.testing.assert_allclose(decision_track(scores, 2, 1)[:, 0], [0.1, 0.5, 0.8, 0.5], atol=1e-6)
    np.testing.assert_allclose(decision_track(scores, 1, 2)[:, 0], [0.0, 0.2, 0.8, 0.2], atol=1e-6)
    with pytest.raises(ConfigError, match=r"smoothing_steps = 0 is not allowed; expected an "
                                          r"integer 1\.\.50"):
        decision_track(scores, 0, 1)
    # a clip shorter than one model window has no step: an empty track, whatever the rule
    assert decision_track(np.zeros((0, 1)), 3, 2).shape == (0, 1)


def test_blocks_of_any_size_give_the_same_events():
    rng = np.random.default_rng(1)
    scores = (rng.random((500, 2)) ** 4).astype(np.float32)
    rule = {"refractory_s": 0.5, "smoothing_steps": 3, "min_steps": 2}
    whole = det(**rule).process(scores)
    d, parts, start = det(**rule), [], 0
    for size in [1, 7, 0, 13, 1, 0, 0, 100, 50, 328]:  # 0: a chunk that completed no step
        parts += d.process(scores[start:start + size])
        start += size
    assert start == 500 and parts == whole and len(whole) > 3


def test_min_steps_and_smoothing():
    scores = track(20, {(5, 0): 0.9, (10, 0): 0.9, (11, 0): 0.9})
    assert [d.time_s for d in det(min_steps=2).process(scores)] == [det().timing.end_of(11)]
    # moving average of 2: a single 0.9 step gives 0.45 < 0.5, two in a row give 0.9
    out = det(smoothing_steps=2).process(scores)
    assert len(out) == 1 and out[0].score == pytest.approx(0.9)


def test_start_is_where_the_score_began_to_rise():
    d = det()
    assert d.process(np.zeros((100, 2), np.float32)) == []
    scores = track(20, {(3, 0): 0.3, (4, 0): 0.4, (5, 0): 0.9, (8, 0): 0.1})
    (found,) = d.process(scores)
    assert found == Detection("a", pytest.approx(0.9), d.timing.end_of(105),
                              d.timing.end_of(103))


def test_nan_scores_never_fire():
    scores = track(50, {(10, 0): 0.9})
    scores[20:30, 0] = np.nan
    scores[35, 0] = 0.9
    assert [d.time_s for d in det(refractory_s=0.1).process(scores)] == \
        [det().timing.end_of(10), det().timing.end_of(35)]


def test_threshold_for_a_false_alarm_budget():
    fa = [9.0, 2.0, 0.4, 0.0]
    thresholds = [0.1, 0.5, 0.9, 0.99]
    assert thresholds[budget_index(fa, 0.5)] == 0.9
    assert thresholds[budget_index(fa, 2.0)] == 0.5
    assert thresholds[budget_index(fa, 0.0)] == 0.99
    assert budget_index([9, 3], 1) is None
    # not monotone: the budget holds from 0.9 up only (0.5 meets it, 0.7 does not)
    assert budget_index([9.0, 0.4, 2.0, 0.4], 0.5) == 3
    # with the calibration hours, at 90% confidence: 4 false alarms in 10 h show a rate up to
    # 0.80 FA/h (chi-square bound), 0 in 10 h up to 0.23, 0 in 2 h up to 1.15
    assert thresholds[budget_index(fa, 1.0, hours=10.0)] == 0.9
    assert thresholds[budget_index(fa, 0.79, hours=10.0)] == 0.99
    assert thresholds[budget_index(fa, 0.5, hours=10.0)] == 0.99
    assert budget_index(fa, 1.1, hours=2.0) is None  # finer than 2 h can show: no threshold
    assert thresholds[budget_index(fa, 1.2, hours=2.0)] == 0.99


def test_rule_errors_name_the_value():
    with pytest.raises(ConfigError, match=r"threshold for 'a' = 1\.5 is not allowed; expected a "
                                          r"number with 0 < threshold <= 1"):
        DecisionRule({"a": 1.5})
    with pytest.raises(ConfigError, match=r"threshold for 'a' = nan"):
        DecisionRule({"a": float("nan")})
    with pytest.raises(ConfigError, match=r"decision\.smoothing_steps = 0"):
        DecisionRule(smoothing_steps=0)
    with pytest.raises(ConfigError, match=r"decision\.min_steps = True"):
        DecisionRule(min_steps=True)
    with pytest.raises(ValueError, match=r"no threshold for \['b'\]"):
        Detector(KW, DecisionRule({"a": 0.5}))
