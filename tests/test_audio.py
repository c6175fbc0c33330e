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
    speech_bounds,
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


def test_load_many_on_threads_keeps_the_order_and_the_samples(tmp_path):
    rng = np.random.default_rng(0)
    paths = [write(tmp_path / f"{i}.wav", (0.1 * rng.standard_normal(800 + 37 * i))
                   .astype(np.float32), rate=22050 if i % 3 else 16000) for i in range(12)]
    paths.insert(5, tmp_path / "missing.wav")
    serial, threaded = load_many(paths, threads=1), load_many(paths, threads=4)
    assert [p for p, _ in threaded.clips] == [p for p, _ in serial.clips] == paths[:5] + paths[6:]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(serial.clips, threaded.clips))
    assert [e.path.name for e in threaded.skipped] == ["missing.wav"]


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


def wav_header(rate: int, frames: int, channels: int = 1) -> bytes:
    """A PCM_16 WAV header declaring ``frames`` frames."""
    data = frames * 2 * channels
    return (b"RIFF" + (36 + data).to_bytes(4, "little") + b"WAVEfmt "
            + (16).to_bytes(4, "little") + (1).to_bytes(2, "little")
            + channels.to_bytes(2, "little") + rate.to_bytes(4, "little")
            + (rate * 2 * channels).to_bytes(4, "little") + (2 * channels).to_bytes(2, "little")
            + (16).to_bytes(2, "little") + b"data" + data.to_bytes(4, "little"))


@pytest.mark.parametrize("rate, reason", [(1, "sample rate 1 Hz is not allowed; expected an "
                                              "integer 4000..192000 Hz"),
                                          (400000, "sample rate 400000 Hz is not allowed")])
def test_a_header_rate_out_of_bounds_is_refused_before_decoding(tmp_path, rate, reason):
    """A 1 Hz header used to make resampling allocate gigabytes."""
    path = tmp_path / "odd.wav"
    path.write_bytes(wav_header(rate, 1000) + bytes(2000))
    with pytest.raises(AudioError, match=reason):
        load_audio(path)


def test_a_file_shorter_than_its_header_is_truncated(tmp_path):
    path = tmp_path / "cut.wav"
    path.write_bytes(wav_header(16000, 16000 * 3600) + bytes(32000))  # 1 h declared, 1 s there
    with pytest.raises(AudioError, match=r"cut\.wav: truncated: the header declares 57600000 "
                                         r"frames, the file holds 16000"):
        load_audio(path)
    streamed = tmp_path / "live.wav"  # a streamed WAV (size unknown) is fine
    header = bytearray(wav_header(16000, 0))
    header[-4:] = b"\xff\xff\xff\xff"
    streamed.write_bytes(bytes(header) + bytes(3200))
    assert len(load_audio(streamed)) == 1600


def test_nan_or_infinite_samples_are_an_error_naming_the_file(tmp_path):
    wave = np.zeros(16000, np.float32)
    wave[8000] = np.nan
    path = write(tmp_path / "nan.wav", wave, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: NaN or infinite sample at 0\.500 s"):
        load_audio(path)
    wave[8000] = np.inf
    write(path, wave, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite sample"):
        load_audio(path)


def test_files_longer_than_the_bound_are_not_decoded_whole(tmp_path):
    from kws.core.audio import MAX_SECONDS

    assert MAX_SECONDS == 4 * 3600
    path = write(tmp_path / "two.wav", np.zeros(32000, np.float32))
    with pytest.raises(AudioError, match=r"2\.0 s long; at most 1 s \(0\.000278 h\) is decoded "
                                         r"whole"):
        load_audio(path, max_seconds=1.0)


def test_blocks_give_the_whole_file_at_any_rate(tmp_path):
    from kws.core.audio import iter_audio

    rng = np.random.default_rng(3)
    x = (0.1 * rng.standard_normal(44100 * 3)).astype(np.float32)
    path = write(tmp_path / "cd.flac", x, 44100)
    whole = load_audio(path)
    pieces = list(iter_audio(path, 16000, block_frames=4000))
    assert len(pieces) > 30
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-6)
    np.testing.assert_allclose(whole, resample_audio(load_audio(path, 44100), 44100, 16000),
                               atol=1e-6)


def test_find_audio_follows_symlinked_folders_once(tmp_path):
    from kws.core.audio import find_audio

    real = tmp_path / "real"
    real.mkdir()
    write(real / "a.wav", np.zeros(400, np.float32))
    top = tmp_path / "top"
    top.mkdir()
    (top / "linked").symlink_to(real, target_is_directory=True)
    (real / "loop").symlink_to(top, target_is_directory=True)  # a cycle back up
    assert [p.name for p in find_audio(top)] == ["a.wav"]


def test_detect_streams_two_hours_in_bounded_memory(tmp_path):
    """kws detect decodes in blocks: 2 h of audio (460 MB as float32) stays far below that."""
    import subprocess
    import sys

    path = tmp_path / "long.flac"
    with soundfile.SoundFile(str(path), "w", 16000, 1, "PCM_16") as f:
        for _ in range(120):
            f.write(np.zeros(16000 * 60, np.int16))
    # the peak of this process's own memory (VmHWM; ru_maxrss would carry pytest's own peak
    # over the fork)
    code = ("import sys; from kws.cli import main; code = main(['detect', "
            f"{str(path)!r}]); print([l.split()[1] for l in open('/proc/self/status') "
            "if l.startswith('VmHWM')][0], file=sys.stderr); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    peak_mb = int(proc.stderr.strip().splitlines()[-1]) / 1024
    assert peak_mb < 300, f"peak resident memory {peak_mb:.0f} MB\n{proc.stderr[-3000:]}"
    assert "long.flac: no keyword detected" in proc.stderr and proc.stdout == ""


def word(rng, seconds: float, rms: float) -> np.ndarray:
    """A speech-like burst: noise under a smooth envelope, ``rms`` loud."""
    n = int(seconds * 16000)
    return (rng.standard_normal(n) * np.hanning(n) * rms * np.sqrt(8 / 3)).astype(np.float32)


def test_speech_bounds_of_a_noisy_recording_padded_with_zeros():
    """The wake-word benchmark's alexa clips: zeros around a recording whose room noise is
    30 dB under the word, with a bump 22 dB under it after the word. The zeros are not the
    floor and the bump is not speech: the bounds are the word's."""
    rng = np.random.default_rng(0)
    room = (rng.standard_normal(int(3.0 * 16000)) * 0.01 * 10 ** (-30 / 20)).astype(np.float32)
    room[int(1.5 * 16000):int(1.5 * 16000) + 1600] += word(rng, 0.1, 0.01 * 10 ** (-22 / 20))
    room[int(0.5 * 16000):int(1.1 * 16000)] += word(rng, 0.6, 0.01)
    padded = np.concatenate([np.zeros(8000, np.float32), room, np.zeros(8000, np.float32)])
    start, end = speech_bounds(padded)
    assert 0.95 <= start <= 1.1 and 1.55 <= end <= 1.65  # the word: 1.0-1.6 s after padding
    assert speech_bounds(padded[8000:-8000]) == pytest.approx((start - 0.5, end - 0.5))


def test_speech_bounds_keep_both_words_of_a_phrase():
    """A pause between two words is not the end of speech; a quieter word still counts."""
    rng = np.random.default_rng(1)
    clip = np.zeros(int(2.5 * 16000), np.float32)
    clip[8000:8000 + 4800] = word(rng, 0.3, 0.05)                # "hey", 0.5-0.8 s
    clip[int(1.2 * 16000):int(1.2 * 16000) + 9600] = word(rng, 0.6, 0.01)  # 14 dB under, 1.2-1.8 s
    clip += (rng.standard_normal(len(clip)) * 1e-5).astype(np.float32)
    start, end = speech_bounds(clip)
    assert 0.5 <= start <= 0.56 and 1.74 <= end <= 1.8
