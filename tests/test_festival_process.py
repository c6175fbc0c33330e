"""festival, a new program per rendering: text2wave's bytes, nothing carried over from one
rendering to the next, texts never run."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kws.synth import festival_process, tts
from kws.synth.tts import Voice, render

VOICES = tts.festival_voices() if shutil.which("festival") else []
needs_festival = pytest.mark.skipif(not VOICES, reason=f"festival is not installed "
                                                       f"({tts.INSTALL_HINT['festival']})")
DIPHONE = next((v for v in VOICES if v.endswith("_diphone")), "kal_diphone")  # takes a pace


@needs_festival
@pytest.mark.parametrize("voice", VOICES)
def test_the_same_bytes_as_text2wave(tmp_path, voice):
    """Two sentences (two utterances, joined) at a slower pace, every installed voice."""
    text = "Turn on the smart mirror. Then computer, stop!"
    subprocess.run(["text2wave", "-eval", f"(voice_{voice})", "-eval",
                    "(Parameter.set 'Duration_Stretch 1.300)", "-o", str(tmp_path / "t.wav")],
                   input=text, text=True, capture_output=True, check=True)
    (tmp_path / "text.txt").write_text(text)
    argv, script = festival_process.command(voice, 1.3, tmp_path / "text.txt", tmp_path / "f.wav")
    subprocess.run(argv, input=script, text=True, capture_output=True, check=True)
    assert (tmp_path / "f.wav").read_bytes() == (tmp_path / "t.wav").read_bytes()


@needs_festival
def test_each_rendering_has_its_own_festival_so_what_came_before_changes_nothing():
    """A festival that kept running between renderings changed some of them with what it had
    spoken before (docs/experiments.md); none is left running to be reused."""
    first = render(Voice("festival", DIPHONE, rate=100), "athena")
    assert children(os.getpid(), b"festival") == []
    fast = render(Voice("festival", DIPHONE, rate=200), "amelia")
    for voice in VOICES:
        render(Voice("festival", voice, rate=130), "alexa, computer and snowboy")
    again = render(Voice("festival", DIPHONE, rate=100), "athena")
    assert first.dtype == np.float32 and np.array_equal(first, again)
    assert 1.4 < len(first) / len(fast) < 2.6


@needs_festival
def test_a_text_is_spoken_never_run(tmp_path):
    """Scheme in a text is read aloud: the file it would create does not appear."""
    marker = tmp_path / "ran"
    text = f'") (system "touch {marker}") ("'
    assert len(render(Voice("festival", VOICES[0]), text)) > 4000
    assert not marker.exists()


@needs_festival
def test_errors_name_the_voice_or_text_and_festivals_words(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"festival voice 'kal\) \(system'"):
        render(Voice("festival", "kal) (system"), "hi")
    with pytest.raises(RuntimeError, match=r"festival failed on 'computer': .*voice_no_such"):
        render(Voice("festival", "no_such"), "computer")
    with pytest.raises(RuntimeError, match=r"festival failed on '': "):
        render(Voice("festival", VOICES[0]), "")
    assert len(render(Voice("festival", VOICES[0]), "still here")) > 4000
    with pytest.raises(ValueError, match="has a quote"):
        festival_process.scheme_path(tmp_path / 'a"b.wav')
    monkeypatch.setattr(tts, "PROGRAM_TIMEOUT_S", 0.001)
    with pytest.raises(RuntimeError, match=r"festival took longer than 0.001 s on 'computer'"):
        render(Voice("festival", VOICES[0]), "computer")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RuntimeError, match=r"festival is not installed \(apt-get install"):
        render(Voice("festival", VOICES[0]), "computer")


def test_only_voice_folders_named_like_scheme_symbols_are_listed(tmp_path, monkeypatch):
    for name in ("kal_diphone", "x) (system", "cmu_us_slt_arctic_hts"):
        (tmp_path / "english" / name).mkdir(parents=True)
    monkeypatch.setattr(tts, "FESTIVAL_VOICES", tmp_path)
    assert tts.festival_voices() == ["cmu_us_slt_arctic_hts", "kal_diphone"]


def children(parent: int, program: bytes) -> list[int]:
    """Process ids of the ``program`` processes whose parent is ``parent`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:  # not a process, or it ended while we looked
            continue
        if f"\nPPid:\t{parent}\n" in status and command.startswith(program):
            found.append(int(entry.name))
    return found


@needs_festival
def test_a_terminated_rendering_run_stops_its_festival(tmp_path):
    """SIGTERM (kill, timeout, a service manager) ends ``kws synth`` as Ctrl-C does: the
    queued renderings are dropped and no festival it started outlives it."""
    run = subprocess.Popen([sys.executable, "-m", "kws", "synth", "smart mirror", "-o",
                            str(tmp_path / "out"), "--count", "400", "--quiet"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (started := children(run.pid, b"festival")):
        assert run.poll() is None and time.monotonic() < deadline, "festival never started"
        time.sleep(0.2)
    run.send_signal(signal.SIGTERM)
    try:
        assert run.wait(30) == 128 + signal.SIGTERM
        time.sleep(1)
        assert [pid for pid in started if Path(f"/proc/{pid}").exists()] == []
    finally:
        run.kill()
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert not (tmp_path / "out" / "report.json").exists()  # an unfinished run is not reused
