"""kws record on the PulseAudio virtual microphone: good takes written as 16 kHz FLAC, silent
and clipped takes skipped with the reason."""

import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile

pytest.importorskip("sounddevice", reason="kws record needs the mic extra")


def record(env, out, *args):
    return subprocess.run([sys.executable, "-m", "kws", "record", "hey_test", "-o", str(out),
                           "--device", "pulse", "--seconds", "1.5", "--pause", "0.2", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def play_loop(env, path, seconds):
    """paplay ``path`` into the virtual microphone again and again for ``seconds``."""
    script = (f"end=$((SECONDS+{int(seconds)})); "
              f"while [ $SECONDS -lt $end ]; do paplay -d vmic {path}; done")
    return subprocess.Popen(["bash", "-c", script], env=env)


def test_good_takes_are_written_and_bad_ones_skipped_with_the_reason(pulse, tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 48000
    speech = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
              + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    soundfile.write(tmp_path / "speech.wav", speech, 48000, subtype="PCM_16")
    soundfile.write(tmp_path / "loud.wav", np.sign(speech) * 1.0, 48000, subtype="PCM_16")
    out = tmp_path / "rec"

    proc = record(pulse, out, "--count", "1", "--max-takes", "2")  # nothing plays: silent
    assert proc.returncode == 1
    assert "skipped take 1: silent (loudest 50 ms at" in proc.stderr
    assert "0 of 1 takes recorded" in proc.stderr

    player = play_loop(pulse, tmp_path / "loud.wav", 15)
    try:
        time.sleep(0.5)
        proc = record(pulse, out, "--count", "1", "--max-takes", "2")
    finally:
        player.terminate()
    assert proc.returncode == 1 and "clipped (" in proc.stderr

    player = play_loop(pulse, tmp_path / "speech.wav", 20)
    try:
        time.sleep(0.5)
        proc = record(pulse, out, "--count", "2")
    finally:
        player.terminate()
    assert proc.returncode == 0, proc.stderr
    files = sorted((out / "hey_test").glob("*.flac"))
    assert [f.name for f in files] == ["0.flac", "1.flac"]
    info = soundfile.info(files[0])
    assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
    assert abs(info.duration - 1.5) < 0.05
    assert "take 1: say 'hey test' once" in proc.stderr


def test_bad_settings_are_named(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "kws", "record", "../up", "-o", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "KEYWORD = '../up' is not allowed" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "kws", "record", "up", "-o", str(tmp_path),
                           "--seconds", "100"], capture_output=True, text=True)
    assert proc.returncode == 2 and "seconds is 100.0; allowed: 0.5..30" in proc.stderr
