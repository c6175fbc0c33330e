"""``kws review DIR``: label the activations ``kws listen --save-detections DIR`` kept.

Each activation is a WAV (the 2 s around it) and a JSON file with its keyword, score, time and
``"label": null``. ``kws review`` lists them, or goes through the unlabelled ones: it plays each
(when a player is there), shows what fired, and reads one key per activation: ``k`` keep (the
keyword was said), ``f`` false alarm, ``s`` skip, ``q`` quit. The answer is written into the JSON
as ``"label": "keyword"`` or ``"label": "false_alarm"``, which ``kws finetune`` reads.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable, TextIO

from kws.data.activations import read_activations, write_label

KEYS = {"k": "keyword", "f": "false_alarm"}
PLAYERS = (("paplay", []), ("aplay", ["-q"]), ("afplay", []))


def player() -> list[str] | None:
    """A command that plays a WAV file, when one is installed."""
    for name, args in PLAYERS:
        if shutil.which(name):
            return [name, *args]
    return None


def review(folder: Path, ask: Callable[[str], str], out: TextIO, play: bool = True) -> dict:
    """Label the unlabelled activations one by one; returns the counts per label."""
    items = read_activations(folder)
    command = player() if play else None
    counts = {"keyword": 0, "false_alarm": 0, "skipped": 0}
    todo = [a for a in items if a.label is None]
    out.write(f"{len(todo)} of {len(items)} activations unlabelled in {folder}\n")
    for i, activation in enumerate(todo, 1):
        out.write(f"[{i}/{len(todo)}] {activation.line()}\n")
        if command and activation.wav_path.is_file():
            subprocess.run([*command, str(activation.wav_path)], check=False,
                           capture_output=True, timeout=30)
        while True:
            answer = ask("  k = keep (it was the keyword), f = false alarm, s = skip, "
                         "q = quit: ").strip().lower()[:1]
            if answer in ("k", "f", "s", "q"):
                break
        if answer == "q":
            break
        if answer == "s":
            counts["skipped"] += 1
            continue
        write_label(activation, KEYS[answer])
        counts[KEYS[answer]] += 1
    out.write(f"labelled {counts['keyword']} keyword, {counts['false_alarm']} false alarm; "
              f"skipped {counts['skipped']}\n")
    return counts
