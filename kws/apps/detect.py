"""``kws detect``: keyword events in audio files, one JSON line per event on stdout.

Each file streams through a fresh :class:`kws.runtime.Spotter` in chunks (events do not depend
on the chunk size); a file that cannot be read, or gives no event, is said on stderr so that
stdout stays JSON Lines.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Callable, Iterable, TextIO

import numpy as np

from kws.core.audio import AudioError, chunks, iter_audio
from kws.runtime import Spotter

log = logging.getLogger(__name__)


def event_line(detection, **extra) -> dict:
    """The JSON object of one event."""
    return {**extra, "keyword": detection.keyword, "score": round(detection.score, 4),
            "time_s": detection.time_s, "start_s": detection.start_s}


def emit(event: dict, out: TextIO | None = None) -> None:
    """One JSON Lines event, flushed at once (scripts read it live)."""
    out = out or sys.stdout
    out.write(json.dumps(event) + "\n")
    out.flush()


def detect_file(path: Path, pieces: Iterable[np.ndarray], spotter: Spotter, chunk: int,
                on_event: Callable[[dict], None] = emit) -> np.ndarray:
    """Stream one file's decoded pieces through ``spotter`` in chunks of ``chunk`` samples;
    report its events; return its ``(steps, K)`` raw scores."""
    tracks, found = [], 0

    def report(detections) -> None:
        nonlocal found
        tracks.append(spotter.last_scores)
        for d in detections:
            on_event(event_line(d, file=str(path)))
            found += 1

    for piece in pieces:
        for part in chunks(piece, max(1, chunk)):
            report(spotter.process(part))
    report(spotter.flush())
    if not found:
        log.info("%s: no keyword detected", path)
    return np.concatenate(tracks).astype(np.float32)


def detect_files(files: list[Path], new_spotter: Callable[[], Spotter], chunk_ms: float,
                 scores_path: Path | None = None) -> int:
    """Detect in every file, decoding each in blocks (any length, bounded memory); 1 when a
    file could not be read, else 0. ``scores_path`` (with a single file) receives its raw scores
    as ``.npy``."""
    if scores_path and len(files) != 1:
        raise ValueError("--scores writes one file's scores: give exactly one FILE")
    failed = 0
    for path in files:
        spotter = new_spotter()
        rate = spotter.model.manifest.frontend.sample_rate
        try:
            scores = detect_file(path, iter_audio(path, rate), spotter,
                                 int(chunk_ms * rate / 1000))
        except AudioError as e:
            log.error("%s", e)
            failed += 1
            continue
        if scores_path:
            np.save(scores_path, scores)
    return 1 if failed else 0
