"""A private PulseAudio with a null sink "vmic" whose monitor is the default input: a virtual
microphone for kws listen and kws record. Skips with the reason when PulseAudio cannot run."""

import os
import shutil
import signal
import subprocess
import time

import pytest


class Pulse:
    """A private PulseAudio with a null sink 'vmic' whose monitor is the default source."""

    def __init__(self, runtime):
        self.env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime))
        self.pid_file = runtime / "pulse" / "pid"
        self.pid = None

    def start(self) -> None:
        start = subprocess.run(
            ["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "-n",
             "--load=module-null-sink sink_name=vmic", "--load=module-native-protocol-unix"],
            env=self.env, capture_output=True, text=True, timeout=30)
        for _ in range(50):
            if self.pid_file.is_file():
                break
            time.sleep(0.1)
        if start.returncode != 0 or not self.pid_file.is_file():
            pytest.skip(f"PulseAudio could not start: {start.stderr.strip()[-300:]}")
        self.pid = int(self.pid_file.read_text())
        subprocess.run(["pactl", "set-default-source", "vmic.monitor"], env=self.env,
                       check=True, timeout=10)

    def stop(self) -> None:
        if self.pid is None:
            return
        os.kill(self.pid, signal.SIGTERM)
        for _ in range(50):
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        self.pid = None


@pytest.fixture
def pulse_server(tmp_path):
    for tool in ("pulseaudio", "pactl", "paplay"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (Debian pulseaudio, pulseaudio-utils)")
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    pulse = Pulse(runtime)
    pulse.start()
    try:
        yield pulse
    finally:
        pulse.stop()


@pytest.fixture
def pulse(pulse_server):
    """The environment of a running private PulseAudio (see Pulse)."""
    return pulse_server.env
