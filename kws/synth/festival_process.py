"""festival as one long-lived program per Python process: Scheme commands on its standard input.

``text2wave`` (festival's own script) starts festival for every rendering: of its 0.30-0.40 s,
0.24 s go to starting festival and loading the voice, so festival took two thirds of the time
of every rendering (docs/experiments.md, twelfth session). Here one ``festival --pipe`` takes the
renderings one at a time: it reads the text from a file, speaks it with the voice and duration
stretch, and saves the waveform as ``text2wave`` does (the same bytes,
``tests/test_festival_process.py``), then writes a marker on its standard error (unbuffered, where
its error messages go too). Voice names are checked before they reach Scheme; texts only travel
in files, so no text is ever read as a command.
"""

from __future__ import annotations

import atexit
import re
import subprocess
import threading
from pathlib import Path

REQUEST_TIMEOUT_S = 60.0
DONE = "kws-rendering-done"
# the waveform of every utterance of the text, joined, as text2wave saves them
SETUP = ("(define (kws_keep utt) (set! kws_wave (if kws_wave (wave.append kws_wave (utt.wave utt))"
         " (utt.wave utt))) utt)")
VOICE_NAME = re.compile(r"[A-Za-z0-9_]+")  # voice folder names that are also Scheme symbols
_PROCESS: FestivalProcess | None = None
_STARTING = threading.Lock()


def scheme_path(path: Path) -> str:
    """``path`` as a Scheme string; ValueError for a path that cannot be one safely."""
    text = str(path)
    if '"' in text or "\\" in text:
        raise ValueError(f"path {text!r} has a quote or backslash; festival cannot be given it")
    return f'"{text}"'


class FestivalProcess:
    """One ``festival --pipe``; :meth:`speak` writes a WAV file.

    Raises:
        RuntimeError: festival is missing, exited, failed on a text or took longer than
            ``REQUEST_TIMEOUT_S`` (its messages included).
    """

    def __init__(self) -> None:
        try:
            self.proc = subprocess.Popen(["festival", "--pipe"], stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         text=True, bufsize=1)
        except FileNotFoundError as e:
            raise RuntimeError("festival is not installed (apt-get install festival)") from e
        self.lock = threading.Lock()
        self.ask(SETUP)

    def ask(self, command: str) -> list[str]:
        """Run one Scheme ``command``; returns what festival printed on its standard error
        meanwhile (its warnings and errors)."""
        killer = threading.Timer(REQUEST_TIMEOUT_S, self.proc.kill)
        killer.start()
        try:
            self.proc.stdin.write(f'{command}\n(format stderr "{DONE}\\n")\n')
            self.proc.stdin.flush()
            said = []
            while (line := self.proc.stderr.readline()).strip() != DONE:
                if not line:
                    raise RuntimeError("festival exited: " + ("".join(said).strip()
                                                              or "no message"))
                said.append(line)
            return said
        except (BrokenPipeError, OSError) as e:
            raise RuntimeError(f"festival exited: {e}") from e
        finally:
            killer.cancel()

    def speak(self, voice: str, stretch: float, text_file: Path, out: Path) -> None:
        """Speak the text in ``text_file`` with festival voice ``voice`` (a folder name such as
        ``kal_diphone``) and durations times ``stretch``; the WAV file goes to ``out``."""
        if not VOICE_NAME.fullmatch(voice):
            raise ValueError(f"festival voice {voice!r}: letters, digits and '_' only")
        command = (f"(begin (voice_{voice}) (Parameter.set 'Duration_Stretch {stretch:.3f}) "
                   f"(set! kws_wave nil) (set! tts_hooks (list utt.synth kws_keep)) "
                   f"(tts_file {scheme_path(text_file)} nil) "
                   f"(wave.save kws_wave {scheme_path(out)} 'riff))")
        with self.lock:
            said = self.ask(command)
        if not out.is_file():
            raise RuntimeError(f"festival failed on {text_file.read_text()!r}: "
                               + ("".join(said).strip() or "no message"))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()


def festival() -> FestivalProcess:
    """The running festival of this process, started on first use and again if it died;
    stopped when this process exits."""
    global _PROCESS
    with _STARTING:
        if _PROCESS is None or _PROCESS.proc.poll() is not None:
            _PROCESS = FestivalProcess()
            atexit.register(_PROCESS.close)
        return _PROCESS
