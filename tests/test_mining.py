"""Hard negatives: the moments a model scores highest, and the training sequences around them."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is in the train extra")

from kws.core.config import load_config
from kws.core.timing import Timing
from kws.features import features
from kws.train import mining
from kws.train.model import KeywordModel
from tests.synthetic import write_config

RATE = 16000


def keep(wave, rng):
    return wave


def test_a_hard_sequence_holds_the_recording_up_to_its_moment_where_a_keyword_would_end():
    wave = np.arange(1, 3 * RATE + 1, dtype=np.float32)  # sample i holds i + 1
    moments = [(0.9, 0, 2.5, "up"), (0.8, 0, 0.5, "up")]
    rng = np.random.default_rng(0)
    for _ in range(20):
        late, early = mining.hard_sequences(moments, [("a.wav", wave)], 2.0, RATE, keep, rng)
        for seq, t in ((late, 2.5), (early, 0.5)):
            assert seq.label == 0 and seq.wave.shape == (2 * RATE,)
            at = int(t * RATE)
            lands = int(np.flatnonzero(seq.wave == at + 1)[0])  # where the moment's sample is
            assert lands <= 2 * RATE - int(0.3 * RATE) - 1  # room after it to fire
            voiced = np.flatnonzero(seq.wave)
            # contiguous recording audio, in order, silence only before the recording begins
            assert np.array_equal(seq.wave[voiced], np.arange(seq.wave[voiced[0]],
                                                              seq.wave[voiced[-1]] + 1))
            assert voiced[-1] == min(2 * RATE - 1, lands + len(wave) - 1 - at)
            if seq.wave[voiced[0]] > 1:  # the recording began before the sequence
                assert voiced[0] == 0
        # an early moment keeps all the recording before it (as a keyword clip keeps its start)
        assert early.wave[np.flatnonzero(early.wave)[0]] == 1


def test_finish_is_applied_to_every_hard_sequence():
    wave = np.ones(RATE, dtype=np.float32)
    seqs = mining.hard_sequences([(0.5, 0, 0.5, "up")] * 3, [("a.wav", wave)], 1.5, RATE,
                                 lambda w, rng: w * 0 + 7, np.random.default_rng(0))
    assert all(np.all(s.wave == 7) for s in seqs)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    cfg = load_config(write_config(tmp_path_factory.mktemp("cfg")))
    torch.manual_seed(0)
    model = KeywordModel(cfg.model, cfg.frontend).eval()
    with torch.no_grad():  # a strong bias towards "up": moments everywhere
        model.out.bias.copy_(torch.tensor([0.0, 1.5, -3.0]))
    rng = np.random.default_rng(1)
    negatives = [(f"n{i}.wav", 0.1 * rng.standard_normal(int(RATE * s)).astype(np.float32))
                 for i, s in enumerate((6.0, 0.5, 9.0))]
    return cfg, model, negatives


def test_hardest_moments_are_sorted_one_per_refractory_period_and_inside_the_recording(scored):
    cfg, model, negatives = scored
    moments = mining.hardest(model, cfg, negatives, 1000)
    assert moments and moments == sorted(moments, reverse=True)
    assert all(v >= mining.LOW and kw in ("up", "down") for v, _, _, kw in moments)
    step_s = Timing.of(cfg.frontend, cfg.model.stack_frames).step_s
    refractory = cfg.decision.refractory_s
    for f, (_, wave) in enumerate(negatives):
        for kw in ("up", "down"):
            times = sorted(t for _, g, t, k in moments if g == f and k == kw)
            assert all(0 < t <= len(wave) / RATE for t in times)
            assert all(b - a >= step_s - 1e-6 for a, b in zip(times, times[1:]))
            assert len(times) <= len(wave) / RATE / refractory + 1
    assert mining.hardest(model, cfg, negatives, 3) == moments[:3]


def test_hardest_reads_given_features_as_it_computes_them(scored):
    cfg, model, negatives = scored
    given = [features(w, cfg.frontend) for _, w in negatives]
    assert mining.hardest(model, cfg, negatives, 50, given) == mining.hardest(
        model, cfg, negatives, 50)
    zeros = [np.zeros_like(f) for f in given]  # and really uses them
    assert mining.hardest(model, cfg, negatives, 50, zeros) != mining.hardest(
        model, cfg, negatives, 50)
