"""kws listen end to end on a virtual microphone (PulseAudio null sink -> its monitor source).

Skips with the reason when PulseAudio, paplay or PortAudio are not installed or cannot start.
"""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile

from kws.core.audio import load_audio
from kws.runtime import OnnxModel


def start_listen(env, *args):
    cmd = [sys.executable, "-u", "-m", "kws.cli", "listen", "--device", "pulse", *map(str, args)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 20
    proc.startup_log = ""
    while time.time() < deadline:  # wait until the input stream is open
        line = proc.stderr.readline()
        proc.startup_log += line
        if "listening on" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    pytest.skip(f"kws listen could not open the virtual microphone: {proc.stderr.read()[-500:]}")


@pytest.fixture
def clip_and_threshold(tiny_run, tiny_export, tmp_path):
    """A keyword clip and a threshold the tiny model crosses on it (from offline scores)."""
    root = tiny_run[0]
    wave = np.concatenate([np.zeros(8000, np.float32),
                           load_audio(root / "keywords" / "up" / "33.wav"),
                           np.zeros(8000, np.float32)])
    path = tmp_path / "clip.wav"
    soundfile.write(path, wave, 16000, subtype="PCM_16")
    # the listener hears silence first: place the threshold between the model's peak on
    # silence (stream start included) and its peak on the keyword
    silence = 3 * 16000
    scores = OnnxModel(tiny_export).score_audio(np.concatenate([np.zeros(silence, np.float32),
                                                                wave]))[:, 0]
    quiet, loud = scores[: silence // 480].max(), scores[silence // 480:].max()
    assert loud > quiet + 0.05, "the tiny model cannot tell this clip from silence"
    return path, round(float(quiet + loud) / 2, 3)


def test_listen_hears_a_keyword_played_into_the_virtual_microphone(
        pulse, tiny_export, clip_and_threshold, tmp_path):
    clip, threshold = clip_and_threshold
    saved = tmp_path / "saved"
    marker = tmp_path / "exec.txt"
    script = tmp_path / "hook.sh"
    script.write_text(f'#!/bin/sh\necho "$KWS_KEYWORD $KWS_SCORE" >> {marker}\n')
    script.chmod(0o755)
    proc = start_listen(pulse, "--model", tiny_export, "--threshold", f"up={threshold}",
                        "--threshold", "down=1.0", "--save-detections", saved,
                        "--exec", f"{script}")
    try:
        time.sleep(2.0)  # so that the 1.5 s saved before the activation exist
        subprocess.run(["paplay", "-d", "vmic", str(clip)], env=pulse, check=True, timeout=30)
        clip_end = time.time()
        line = proc.stdout.readline()
        heard = time.time()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    event = json.loads(line)
    assert event["keyword"] == "up" and event["score"] >= threshold
    assert heard - clip_end <= 3.0
    assert proc.returncode == 0, err
    assert "stopped: Counters(" in err  # SIGTERM ends cleanly with the counters logged
    wavs = sorted(saved.glob("*.wav"))
    assert wavs and 1.5 <= soundfile.info(wavs[0]).duration <= 2.01
    meta = json.loads(wavs[0].with_suffix(".json").read_text())
    assert meta["keyword"] == "up" and meta["label"] is None
    for _ in range(50):  # the hook runs asynchronously
        if marker.is_file():
            break
        time.sleep(0.1)
    assert marker.read_text().startswith("up 0.")


def test_list_devices_shows_the_virtual_microphone(pulse):
    proc = subprocess.run([sys.executable, "-m", "kws.cli", "listen", "--list-devices"],
                          env=pulse, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "pulse" in proc.stdout


def test_a_device_missing_at_start_is_a_clear_error(pulse, tiny_export):
    """Not a retry loop forever: a device that was never there stops kws listen with a
    non-zero status (a device that disappears later is reopened, see below)."""
    proc = subprocess.run([sys.executable, "-m", "kws.cli", "listen", "--model",
                           str(tiny_export), "--device", "no-such-device"], env=pulse,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "cannot open input device 'no-such-device'" in proc.stderr
    assert "kws listen --list-devices shows the input devices" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--exec", "'unclosed"], "--exec \"'unclosed\" does not parse: No closing quotation"),
    (["--exec", "no-such-program --flag"], "'no-such-program' is not an executable program"),
    (["--save-detections", "/proc/kws-cannot-write-here"], "not a writable folder"),
])
def test_what_the_first_detection_needs_is_checked_at_start(tiny_export, args, message):
    proc = subprocess.run([sys.executable, "-m", "kws.cli", "listen", "--model",
                           str(tiny_export), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_a_clip_that_cannot_be_saved_is_logged_and_listening_goes_on(tiny_export, tmp_path,
                                                                     caplog):
    from kws.apps.listen import ListenConfig, Listener
    from kws.data.activations import safe_file_name
    from kws.runtime import Detection, Spotter

    folder = tmp_path / "saved"
    listener = Listener(Spotter(OnnxModel(tiny_export)), ListenConfig(save_dir=folder),
                        lambda event: None)
    listener._remember(np.zeros(48000, np.float32))
    folder.rmdir()
    folder.write_text("now a file")  # the folder is gone: saving fails
    listener._pending_saves.append((Detection("a/../b", 0.9, 2.0, 1.9), 0))
    with caplog.at_level("ERROR"):
        listener._flush_saves()
    assert listener.counters.save_failures == 1 and "could not save the activation" in caplog.text
    assert safe_file_name("a/../b c") == "a____b_c"


def test_listen_reopens_a_device_that_disappears(pulse_server, tiny_export, clip_and_threshold):
    clip, threshold = clip_and_threshold
    proc = start_listen(pulse_server.env, "--model", tiny_export, "--threshold", f"up={threshold}",
                        "--threshold", "down=1.0")
    try:
        time.sleep(1.0)
        pulse_server.stop()  # the sound server (the "device") goes away mid-stream
        time.sleep(5.0)
        pulse_server.start()
        deadline, seen = time.time() + 30, []
        while time.time() < deadline:  # until the listener has reopened the input
            seen.append(proc.stderr.readline())
            if "listening on" in seen[-1]:
                break
        time.sleep(2.0)
        subprocess.run(["paplay", "-d", "vmic", str(clip)], env=pulse_server.env, check=True,
                       timeout=30)
        event = json.loads(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    log = "".join(seen) + err
    assert event["keyword"] == "up"
    assert "input device stopped delivering audio; reopening" in log
    assert "reopens=0" not in err and "device_errors=0" not in err


def test_listen_resamples_a_device_recording_at_48_khz(pulse, tiny_export, clip_and_threshold):
    clip, threshold = clip_and_threshold
    proc = start_listen(pulse, "--model", tiny_export, "--threshold", f"up={threshold}",
                        "--threshold", "down=1.0", "--rate", "48000")
    try:
        time.sleep(2.0)
        subprocess.run(["paplay", "-d", "vmic", str(clip)], env=pulse, check=True, timeout=30)
        event = json.loads(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert event["keyword"] == "up"
    assert proc.returncode == 0
    assert "recording at 48000 Hz and resampling to 16000 Hz" in proc.startup_log
