"""Saved activations: the audio around each detection ``kws listen --save-detections`` keeps,
and what a person said it was (``kws review``); ``kws finetune`` trains on them.

One activation is ``<stamp>-<keyword>-<score>.wav`` (16-bit PCM, the 2 s around the event) and a
``.json`` beside it: ``{"keyword", "score", "time_s", "clip_start_s", "label"}`` with ``label``
null until reviewed, then ``"keyword"`` (it was said) or ``"false_alarm"``.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import soundfile

from kws.core.audio import float32_to_int16

log = logging.getLogger(__name__)

LABELS = ("keyword", "false_alarm")  # what a reviewed activation was


@dataclass
class Activation:
    """One saved activation: its files and what the JSON says."""

    json_path: Path
    wav_path: Path
    keyword: str
    score: float
    time_s: float
    label: str | None

    def line(self) -> str:
        label = self.label or "unlabelled"
        return (f"{self.wav_path.name}: {self.keyword} at {self.time_s:.2f} s, score "
                f"{self.score:.2f} - {label}")


def read_activations(folder: Path) -> list[Activation]:
    """Every saved activation in ``folder`` (sorted by name); malformed JSON files are logged
    and left out.

    Raises:
        FileNotFoundError: no such folder.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of saved activations")
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            meta = json.loads(path.read_text())
            out.append(Activation(path, path.with_suffix(".wav"), str(meta["keyword"]),
                                  float(meta["score"]), float(meta["time_s"]),
                                  meta.get("label") if meta.get("label") in LABELS else None))
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("%s: not a saved activation (%s); left out", path, e)
    return out


def write_label(activation: Activation, label: str) -> None:
    """Store ``label`` in the activation's JSON (through a temporary file)."""
    meta = json.loads(activation.json_path.read_text())
    meta["label"] = label
    tmp = activation.json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta))
    tmp.replace(activation.json_path)
    activation.label = label


def safe_file_name(name: str) -> str:
    """``name`` with every character but letters, digits, "_" and "-" made "_"."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "_"


def save_activation(folder: Path, keyword: str, score: float, time_s: float, clip: np.ndarray,
                    clip_start_s: float, rate: int) -> Path:
    """Write one activation (WAV + JSON, label null) into ``folder``; returns the JSON path."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%f")[:-3]
    base = f"{stamp}-{safe_file_name(keyword)}-{score:.2f}"
    for n in itertools.count(1):
        name = base if n == 1 else f"{base}-{n}"
        try:  # claim the name: two activations in the same millisecond are both kept
            with (folder / f"{name}.wav").open("xb") as f:
                soundfile.write(f, float32_to_int16(clip), rate, subtype="PCM_16", format="WAV")
            break
        except FileExistsError:
            continue
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"keyword": keyword, "score": score, "time_s": time_s,
                                "clip_start_s": clip_start_s, "label": None}))
    return path
