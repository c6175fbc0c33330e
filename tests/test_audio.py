"""Audio decoding, conversions, chunking and bad-input handling."""

import logging

import numpy as np
import pytest
import soundfile

from kws.core.audio import (
    AudioError,
    as_float32,
    chunks,
    float32_to_int16,
    int16_to_float32,
    load_audio,
    load_many,
    resample_audio,
)
from tests.conftest import shared_dir


def write(path, data, rate=16000, **kw):
    soundfile.write(str(path), data, rate, **kw)
    return path


def test_roundtrip_wav_int16_exact(tmp_path):
    pcm = np.array([0, 1, -1, 32767, -32768, 1234], dtype=np.int16)
    path = write(tmp_path / "a.wav", pcm, subtype="PCM_16")
    wave = load_audio(path)
    assert wave.dtype == np.float32
    np.testing.assert_array_equal(float32_to_int16(wave), pcm)


def test_stereo_is_averaged_to_mono(tmp_path):
    left = np.full(1000, 0.5, dtype=np.float32)
    right = np.full(1000, -0.25, dtype=np.float32)
    path = write(tmp_path / "s.flac", np.stack([left, right], 1))
    np.testing.assert_allclose(load_audio(path), 0.125, atol=1e-4)


def test_resampling_keeps_a_tone_and_its_length(tmp_path):
    t = np.arange(44100) / 44100
    path = write(tmp_path / "t.wav", 0.5 * np.sin(2 * np.pi * 1000 * t), rate=44100)
    wave = load_audio(path)
    assert len(wave) == 16000
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins over 1 s
    assert abs(np.sqrt(np.mean(wave[1000:-1000] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


def test_polyphase_resampler_rejects_aliases():
    """A 7 kHz tone at 44.1 kHz is kept; a 10 kHz tone (above 8 kHz Nyquist) is removed."""
    t = np.arange(44100) / 44100
    kept = resample_audio(np.sin(2 * np.pi * 7000 * t), 44100, 16000)
    removed = resample_audio(np.sin(2 * np.pi * 10000 * t), 44100, 16000)
    assert np.std(kept[500:-500]) > 0.6
    assert np.std(removed[500:-500]) < 0.01


def test_wrong_rate_without_resampling_names_both_rates(tmp_path):
    path = write(tmp_path / "r.wav", np.zeros(800, dtype=np.float32), rate=8000)
    with pytest.raises(AudioError, match=r"r\.wav: sample rate is 8000 Hz; expected 16000 Hz"):
        load_audio(path, resample=False)


def test_empty_file(tmp_path):
    path = write(tmp_path / "e.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioError, match=r"e\.wav: empty file"):
        load_audio(path)


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.wav: no such file"):
        load_audio(tmp_path / "nope.wav")
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    with pytest.raises(AudioError, match=r"notes\.wav: unsupported format"):
        load_audio(text)


def test_truncated_flac_is_a_corrupt_stream(tmp_path):
    good = write(tmp_path / "g.flac", (np.random.default_rng(0).standard_normal(32000) * 0.1))
    data = good.read_bytes()
    bad = tmp_path / "bad.flac"
    bad.write_bytes(data[: len(data) // 2] + bytes(200) + data[len(data) // 2 + 200:])
    with pytest.raises(AudioError, match=r"bad\.flac: corrupt stream"):
        load_audio(bad)


def test_load_many_skips_and_counts_with_one_warning_each(tmp_path, caplog):
    good = write(tmp_path / "ok.wav", np.zeros(1600, dtype=np.float32))
    empty = write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    (tmp_path / "junk.flac").write_bytes(b"fLaC" + bytes(100))
    with caplog.at_level(logging.WARNING, logger="kws.audio"):
        report = load_many([good, empty, tmp_path / "junk.flac"])
    assert [p.name for p, _ in report.clips] == ["ok.wav"]
    assert sorted(e.path.name for e in report.skipped) == ["empty.wav", "junk.flac"]
    per_file = [r for r in caplog.records if r.getMessage().startswith("skipping")]
    assert len(per_file) == 2
    assert report.summary() == "1 loaded, 2 skipped"


def test_shared_corrupt_alexa_files_are_skipped_not_dropped():
    folder = shared_dir("wake-word-benchmark", "alexa")
    paths = sorted(folder.glob("*.flac"))
    report = load_many(paths)
    assert len(report.clips) + len(report.skipped) == len(paths) == 200
    assert {e.path.name for e in report.skipped} >= {"126.flac", "32.flac"}
    assert all("corrupt stream" in e.reason for e in report.skipped)
    assert all(len(w) > 16000 for _, w in report.clips)


def test_sample_conversions():
    np.testing.assert_array_equal(float32_to_int16(np.array([1.5, -1.5, 0.5], np.float32)),
                                  [32767, -32768, 16384])
    assert int16_to_float32(np.array([-32768], np.int16))[0] == -1.0
    with pytest.raises(ValueError, match="expected int16"):
        int16_to_float32(np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="must be int16 or float, got int32"):
        as_float32(np.zeros(3, np.int32))


def test_chunks_cover_everything_in_order():
    x = np.arange(10)
    assert [c.tolist() for c in chunks(x, 4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValueError, match="chunk size must be >= 1"):
        list(chunks(x, 0))
