"""``kws data check``: what the corpora in a data root hold, and what a config would find.

Counts audio files and their hours from the file headers alone (nothing is decoded), so a
user sees before training that a folder is missing or empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import soundfile

from kws.core.audio import find_audio
from kws.core.config import Config
from kws.data.catalog import Corpus


@dataclass(frozen=True)
class Found:
    """What one folder holds: audio files, their hours, and files that are not readable."""

    path: Path
    files: int = 0
    hours: float = 0.0
    unreadable: int = 0

    @property
    def exists(self) -> bool:
        return self.path.is_dir()

    def line(self, label: str) -> str:
        if not self.exists:
            return f"{label}: missing ({self.path})"
        bad = f", {self.unreadable} unreadable" if self.unreadable else ""
        return f"{label}: {self.files} audio files, {self.hours:.2f} h{bad} ({self.path})"


def inventory(folder: Path) -> Found:
    """Count the audio files below ``folder`` and their duration from the headers."""
    if not folder.is_dir():
        return Found(folder)
    seconds, bad, files = 0.0, 0, find_audio(folder)
    for path in files:
        try:
            info = soundfile.info(str(path))
            seconds += info.frames / info.samplerate
        except (soundfile.LibsndfileError, RuntimeError, ZeroDivisionError):
            bad += 1
    return Found(folder, len(files), seconds / 3600, bad)


def config_folders(cfg: Config) -> list[tuple[str, str]]:
    """(role, folder as written) of every audio folder a config reads."""
    d = cfg.data
    out = [(f"keyword {kw}", f) for kw, folders in d.keyword_dirs.items() for f in folders]
    out += [("negatives", f) for f in d.negative_dirs]
    out += [("confusables", f) for f in d.confusable_dirs]
    out += [("held-out negatives", f) for f in d.eval_negative_dirs]
    out += [("noise", f) for f in d.noise_dirs]
    return out


def report(root: Path, corpora: dict[str, Corpus], cfg: Config | None = None) -> tuple[str, bool]:
    """The text of ``kws data check`` and whether everything a config names is there."""
    lines = [f"data root {root}:"]
    lines += ["  " + inventory(root / name).line(name) for name in corpora
              if (root / name).exists()]
    missing = [name for name in corpora if not (root / name).exists()]
    if missing:
        lines.append("  not downloaded: " + ", ".join(missing))
    ok = True
    if cfg is not None:
        lines.append("the config reads:")
        for role, folder in config_folders(cfg):
            found = inventory(cfg.resolve(folder))
            ok &= found.exists and found.files > 0
            lines.append("  " + found.line(f"{role} [{folder}]"))
    return "\n".join(lines), ok
