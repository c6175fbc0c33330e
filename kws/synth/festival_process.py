"""festival, one short-lived program per rendering: Scheme commands on its standard input.

A festival that speaks many texts one after another does not always give a text the same
samples: its diphone synthesis reads memory outside what it allocated (valgrind), so what came
before can change a rendering. 29 of 150 ked_diphone renderings changed when one festival took
them in another order; each in a new festival, none did (docs/experiments.md, thirty-ninth
session). So every rendering gets a new ``festival --pipe``, and a seed names one set of files
whatever the worker count, the order the threads reach festival in, or what was rendered before.

festival starts in 0.03 s with a Lisp heap of ``HEAP_CELLS`` (its default of 10 million cells
costs 0.15 s to set up and no rendering here needs it). The program reads the text from a file,
speaks it with the voice and duration stretch and saves the waveform as ``text2wave`` does (the
same bytes, ``tests/test_festival_process.py``). Voice names are checked before they reach
Scheme; texts only travel in files, so no text is ever read as a command.
"""

from __future__ import annotations

import re
from pathlib import Path

HEAP_CELLS = 1_000_000
# the waveform of every utterance of the text, joined, as text2wave saves them
SETUP = ("(define (kws_keep utt) (set! kws_wave (if kws_wave (wave.append kws_wave (utt.wave utt))"
         " (utt.wave utt))) utt)")
VOICE_NAME = re.compile(r"[A-Za-z0-9_]+")  # voice folder names that are also Scheme symbols


def scheme_path(path: Path) -> str:
    """``path`` as a Scheme string; ValueError for a path that cannot be one safely."""
    text = str(path)
    if '"' in text or "\\" in text:
        raise ValueError(f"path {text!r} has a quote or backslash; festival cannot be given it")
    return f'"{text}"'


def command(voice: str, stretch: float, text_file: Path, out: Path) -> tuple[list[str], str]:
    """festival's argument list and standard input that speak the text in ``text_file`` with
    festival voice ``voice`` (a folder name such as ``kal_diphone``) and durations times
    ``stretch`` into the WAV file ``out``; run once per rendering
    (:func:`kws.synth.tts.render`). ValueError: ``voice`` is not a voice folder name."""
    if not VOICE_NAME.fullmatch(voice):
        raise ValueError(f"festival voice {voice!r}: letters, digits and '_' only")
    # one expression: an error anywhere (an unknown voice) stops the rest
    script = (f"{SETUP}\n(begin (voice_{voice}) (Parameter.set 'Duration_Stretch {stretch:.3f}) "
              f"(set! kws_wave nil) (set! tts_hooks (list utt.synth kws_keep)) "
              f"(tts_file {scheme_path(text_file)} nil) "
              f"(wave.save kws_wave {scheme_path(out)} 'riff))\n")
    return ["festival", "--heap", str(HEAP_CELLS), "--pipe"], script
