"""Training sequences: how background speech is drawn, where the keyword lands."""

from pathlib import Path

import numpy as np
import pytest

from kws.core.config import AugmentConfig, TrainConfig
from kws.data.corpora import Clips
from kws.train import augment
from kws.train.sequences import SequenceMaker

SR = 16000


def maker(negative_draw: str) -> SequenceMaker:
    """One 60 s negative recording of +1 and nine 1 s recordings of -1; a 0.5 s keyword."""
    keyword = np.zeros(SR, np.float32)
    keyword[SR // 4:3 * SR // 4] = 0.5
    negatives = [(Path("long.wav"), np.ones(60 * SR, np.float32))]
    negatives += [(Path(f"short{i}.wav"), -np.ones(SR, np.float32)) for i in range(9)]
    clips = Clips({"kw": [(Path("kw.wav"), keyword)]}, negatives, 0)
    return SequenceMaker(clips, ("kw",), [], [], AugmentConfig(), 4.0, 0.5, SR, negative_draw)


def peak_hz(x: np.ndarray) -> float:
    """The frequency of the largest bin of ``x``'s spectrum, in Hz."""
    return np.abs(np.fft.rfft(x)).argmax() * SR / len(x)


@pytest.mark.parametrize("draw, low, high", [("file", 0.05, 0.35), ("duration", 0.8, 1.0)])
def test_background_speech_is_drawn_per_file_or_per_second(draw, low, high):
    # per file the long recording is 1 draw in 10 (about 17% of the samples: its pieces are
    # longer); per second it is 60 s of 69 (about 92%)
    m, rng = maker(draw), np.random.default_rng(0)
    waves = np.concatenate([m.background(rng) for _ in range(300)])
    share = (waves > 0).sum() / (waves != 0).sum()
    assert low < share < high


def test_the_keyword_ends_inside_the_sequence_with_time_to_fire():
    m, rng = maker("duration"), np.random.default_rng(1)
    seqs = [m.make(rng) for _ in range(200)]
    positives = [s for s in seqs if s.label == 1]
    assert 60 < len(positives) < 140 and all(s.wave.shape == (4 * SR,) for s in seqs)
    for s in positives:
        assert 0 <= s.start_s < s.end_s <= 4.0 - 0.3 + 1e-6
    assert all(s.start_s == s.end_s == 0 for s in seqs if s.label == 0)


def test_an_unknown_negative_draw_is_refused():
    with pytest.raises(ValueError, match=r"train.negative_draw.*'every'.*\"file\" or \"duration\""):
        TrainConfig(negative_draw="every")


def test_random_eq_colours_the_channel_but_keeps_the_speech_band_level():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4 * SR).astype(np.float32)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    band = (f > 300) & (f < 3000)
    db = []
    for seed in range(20):
        y = augment.random_eq(x, np.random.default_rng(seed))
        assert y.shape == x.shape and y.dtype == np.float32
        gain = 20 * np.log10(np.abs(np.fft.rfft(y)) / np.abs(np.fft.rfft(x)))
        assert abs(gain[band].mean()) < 1e-3  # 0 dB on average over 300-3000 Hz
        db.append(gain)
    spread = np.ptp(np.array(db), axis=0)
    assert spread[band].max() > 6  # the curves differ from one draw to the next
    np.testing.assert_array_equal(augment.random_eq(x, np.random.default_rng(3)),
                                  augment.random_eq(x, np.random.default_rng(3)))


def test_sequences_get_a_channel_colour_only_when_asked():
    m, plain = maker("file"), maker("file")
    m.aug = AugmentConfig(eq_prob=1.0, noise_prob=0.0, reverb_prob=0.0)
    plain.aug = AugmentConfig(noise_prob=0.0, reverb_prob=0.0)
    a, b = m.make(np.random.default_rng(5)), plain.make(np.random.default_rng(5))
    assert a.label == b.label and not np.allclose(a.wave, b.wave, atol=1e-3)
    with pytest.raises(ValueError, match=r"augment.eq_prob.*1.5.*0..1"):
        AugmentConfig(eq_prob=1.5)


@pytest.mark.parametrize("factor", [0.6, 1.5])
def test_tempo_changes_duration_but_keeps_pitch_unlike_speed(factor):
    tone = (0.5 * np.sin(2 * np.pi * 200 * np.arange(SR) / SR)).astype(np.float32)

    def pitch_hz(x):
        return np.abs(np.fft.rfft(x * np.hanning(len(x)))).argmax() * SR / len(x)

    slow = augment.change_tempo(tone, factor)
    assert len(slow) == round(SR / factor)
    assert abs(pitch_hz(slow) - 200) < 2
    assert abs(pitch_hz(augment.change_speed(tone, factor)) - 200 * factor) < 2
    np.testing.assert_array_equal(augment.change_tempo(tone, 1.0), tone)
    with pytest.raises(ValueError, match="tempo factor must be > 0, got -1"):
        augment.change_tempo(tone, -1)


@pytest.mark.parametrize("n", [1, 100, 511, 512, 700])
def test_vtlp_keeps_the_length_of_clips_shorter_than_its_frame(n):
    """A clip shorter than one 512-sample STFT frame (a segment cut at a sequence's end) is
    padded to one frame and comes back at its own length (it raised before)."""
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    out = augment.vtlp(x, 1.1)
    assert out.shape == (n,) and out.dtype == np.float32 and np.isfinite(out).all()


def test_keyword_bounds_follow_its_tempo():
    m = maker("file")
    m.aug = AugmentConfig(speed=(1.0, 1.0))
    base = m.keyword(np.random.default_rng(0))
    m.aug = AugmentConfig(speed=(1.0, 1.0), tempo=(0.6, 0.6))
    _, clip, start, end = m.keyword(np.random.default_rng(0))
    assert len(clip) == round(len(base[1]) / 0.6)
    assert (start, end) == pytest.approx((base[2] / 0.6, base[3] / 0.6))
    voiced = np.flatnonzero(np.abs(clip) > 0.5 * np.abs(clip).max())
    assert voiced[-1] / SR - voiced[0] / SR == pytest.approx(0.5 / 0.6, abs=0.03)


def test_a_tempo_range_outside_half_to_double_is_refused():
    with pytest.raises(ValueError, match=r"augment.tempo.*\[0.4, 1.0\].*between 0.5 and 2"):
        AugmentConfig(tempo=(0.4, 1.0))


def test_keyword_clips_get_a_vocal_tract_length_only_when_asked():
    """[augment] vtlp moves the formants of keyword clips (more speakers from the same
    recordings) and keeps their length and bounds; off, nothing is drawn."""
    m = maker("file")
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t) * (np.abs(t - 0.5) < 0.25)).astype(np.float32)
    m.positives = [[(tone, 0.25, 0.75)]]

    m.aug = AugmentConfig(speed=(1.0, 1.0))
    k, base, start, end = m.keyword(np.random.default_rng(0))
    m.aug = AugmentConfig(speed=(1.0, 1.0), vtlp=(1.15, 1.15))
    k2, warped, start2, end2 = m.keyword(np.random.default_rng(0))
    assert (k2, len(warped), start2, end2) == (k, len(base), start, end)
    assert peak_hz(base) == pytest.approx(1000, abs=5)
    assert peak_hz(warped) == pytest.approx(1150, abs=32)  # by the factor, to an STFT bin
    with pytest.raises(ValueError, match=r"augment.vtlp.*between 0.5 and 2"):
        AugmentConfig(vtlp=(0.3, 1.0))


def test_background_speech_changes_speed_only_when_asked():
    """[augment] background_speed resamples each negative speech segment as speed does a
    keyword clip (a 1 kHz tone comes out at 1.25 kHz); the background keeps its length."""
    m = maker("duration")
    tone = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(10 * SR) / SR)).astype(np.float32)
    m.negatives, m.negative_ends = [tone], np.array([len(tone)])

    plain = m.background(np.random.default_rng(2))
    m.aug = AugmentConfig(background_speed=(1.25, 1.25))
    faster = m.background(np.random.default_rng(2))
    assert plain.shape == faster.shape == (4 * SR,) and (faster != 0).mean() > 0.5
    assert peak_hz(plain) == pytest.approx(1000, abs=1)
    assert peak_hz(faster) == pytest.approx(1250, abs=1)
    with pytest.raises(ValueError, match=r"augment.background_speed.*between 0.5 and 2"):
        AugmentConfig(background_speed=(0.3, 1.0))


def test_auxiliary_keywords_take_their_share_of_the_keyword_clips():
    """[train] auxiliary_share of the keyword sequences hold an auxiliary keyword (labels after
    the reported keywords', drawn evenly among them); a missing one is named."""
    m = maker("file")
    clip = m.positives[0][0][0]
    clips = Clips({name: [(Path(f"{name}.wav"), clip)] for name in ("kw", "a1", "a2")},
                  [(Path("n.wav"), np.ones(10 * SR, np.float32))], 0)
    aux = SequenceMaker(clips, ("kw",), [], [], AugmentConfig(), 4.0, 0.5, SR, "file",
                        auxiliary=("a1", "a2"), auxiliary_share=0.3)
    assert aux.keywords == ("kw", "a1", "a2")
    rng = np.random.default_rng(0)
    counts = np.bincount([aux.keyword(rng)[0] for _ in range(3000)], minlength=3) / 3000
    assert counts[0] == pytest.approx(0.7, abs=0.03)
    assert counts[1] == pytest.approx(0.15, abs=0.02) and counts[2] == pytest.approx(0.15, abs=0.02)
    labels = {aux.make(rng).label for _ in range(300)}
    assert labels == {0, 1, 2, 3}
    with pytest.raises(ValueError, match=r"no training clips for keyword\(s\) \['a3'\]"):
        SequenceMaker(clips, ("kw",), [], [], AugmentConfig(), 4.0, 0.5, SR, auxiliary=("a3",))


def test_auxiliary_real_share_draws_real_recordings_that_often(tmp_path):
    """[train] auxiliary_real_share: an auxiliary keyword's clip is one of its real recordings
    (below the real roots) with that probability; absent, or for a keyword with no real
    recordings, clips are drawn uniformly; a share outside 0..1 is refused by name."""
    clip = maker("file").positives[0][0][0]
    real, rendered = tmp_path / "real", tmp_path / "rendered"
    a1 = [(real / f"{i}.wav", clip) for i in range(2)] + [(rendered / f"{i}.wav", clip)
                                                          for i in range(8)]
    clips = Clips({"kw": [(Path("kw.wav"), clip)], "a1": a1, "a2": a1[2:]},
                  [(Path("n.wav"), np.ones(10 * SR, np.float32))], 0)

    def real_share_drawn(share, keyword):
        aux = SequenceMaker(clips, ("kw",), [], [], AugmentConfig(), 4.0, 0.5, SR, "file",
                            auxiliary=("a1", "a2"), auxiliary_share=0.5, real_share=share,
                            real_roots=(real,))
        rng = np.random.default_rng(0)
        picks = [aux.clip_index(keyword, rng) for _ in range(4000)]
        assert min(picks) >= 0 and max(picks) < len(clips.positives[aux.keywords[keyword]])
        return np.mean([aux.keywords[keyword] == "a1" and p < 2 for p in picks])

    assert real_share_drawn(0.6, 1) == pytest.approx(0.6, abs=0.03)
    assert real_share_drawn(None, 1) == pytest.approx(0.2, abs=0.03)
    assert real_share_drawn(0.6, 2) == 0.0  # a2 has renderings only: drawn among them
    with pytest.raises(ValueError, match=r"train.auxiliary_real_share.*1.5.*0..1, or absent"):
        TrainConfig(auxiliary_real_share=1.5)


def test_slots_are_drawn_with_the_makers_shares():
    """A pool slot is positive, partial or negative, and auxiliary, with the shares the maker
    draws with; its auxiliary keyword is drawn evenly."""
    from kws.train.sequences import draw_slot

    rng = np.random.default_rng(0)
    slots = [draw_slot(rng, 0.6, 0.25, 3, 0.5) for _ in range(20000)]
    kinds = [s.kind for s in slots]
    assert kinds.count("positive") / 20000 == pytest.approx(0.6, abs=0.01)
    assert kinds.count("partial") / 20000 == pytest.approx(0.4 * 0.25, abs=0.01)
    keyword = [s for s in slots if s.kind != "negative"]
    aux = [s for s in keyword if s.auxiliary >= 0]
    assert len(aux) / len(keyword) == pytest.approx(0.5, abs=0.01)
    assert all(s.auxiliary == -1 for s in slots if s.kind == "negative")
    assert np.bincount([s.auxiliary for s in aux]) / len(aux) == pytest.approx([1 / 3] * 3,
                                                                              abs=0.02)
    assert np.mean([s.real for s in aux]) == pytest.approx(0.5, abs=0.01)
    assert draw_slot(np.random.default_rng(1), 1.0, 0.0, 0, 0.5).auxiliary == -1


def test_a_slot_takes_a_real_recording_at_the_real_share_else_its_first_rendering_here(
        tmp_path):
    """The real share counts every rendering a whole rendering would put in training (not only
    those made); a slot's renderings are tried in order; with none here a real recording is
    used, and with no real one either the keyword is named."""
    from kws.train.sequences import Slot

    clip = maker("file").positives[0][0][0]
    real, rendered = tmp_path / "real", tmp_path / "rendered"
    a1 = [(real / f"{i}.wav", clip) for i in range(2)]
    a1 += [(rendered / f"{n:05d}-flite-v.wav", clip) for n in (3, 7)]
    a3 = [(tmp_path / "yes" / f"{i}.wav", clip) for i in range(4)]
    clips = Clips({"kw": [(Path("kw.wav"), clip)], "a1": a1, "a2": a1[2:], "a3": a3},
                  [(Path("n.wav"), np.ones(10 * SR, np.float32))], 0)

    def aux(share=None):
        return SequenceMaker(clips, ("kw",), [], [], AugmentConfig(), 4.0, 0.5, SR, "file",
                             auxiliary=("a1", "a2", "a3"), auxiliary_share=0.5,
                             real_share=share,
                             real_roots=(real,), renderings=8.0)

    m = aux()  # real share 2 / (2 + 8)
    assert m.slot_index(Slot("positive", 0, 0.05, (7,))) == 0
    assert m.slot_index(Slot("positive", 0, 0.15, (7,))) == 1
    assert m.slot_index(Slot("positive", 0, 0.5, (5, 7, 3))) == 3
    assert m.slot_index(Slot("positive", 0, 0.5, (3, 7))) == 2
    assert m.slot_index(Slot("positive", 0, 0.7, (1, 2))) == 1  # none here: a real one
    assert m.slot_index(Slot("positive", 1, 0.1, (7,))) == 1  # a2: renderings only
    with pytest.raises(ValueError, match=r"auxiliary keyword 'a2': none of the renderings "
                                         r"\[1, 2\] is among its training clips"):
        m.slot_index(Slot("positive", 1, 0.1, (1, 2)))
    assert aux(0.6).slot_index(Slot("positive", 0, 0.5, (7,))) == 1  # the share pinned
    # clips neither real nor numbered renderings (an auxiliary word's own recordings)
    assert [m.slot_index(Slot("positive", 2, u, (1,))) for u in (0.1, 0.3, 0.6, 0.9)] == \
        [0, 1, 2, 3]
    rng = np.random.default_rng(0)
    assert m.make(rng, Slot("negative")).label == 0
    assert m.make(rng, Slot("partial", 0, 0.5, (7,))).label == 0
    assert m.make(rng, Slot("positive", 0, 0.5, (7,))).label == 2
    assert m.make(rng, Slot("positive", 1, 0.5, (3,))).label == 3
    assert m.make(rng, Slot("positive")).label == 1  # the run's own keyword
