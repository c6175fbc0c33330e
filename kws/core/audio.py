"""Audio input: decode files to float32 mono at 16 kHz, convert sample formats, cut chunks.

The contract used everywhere else: a 1-D ``numpy.float32`` array in [-1, 1] at
``FrontendConfig.sample_rate`` (16 kHz by default). Files are decoded with ``soundfile``
(wav, flac, ogg); other rates are resampled with a polyphase FIR filter
(``scipy.signal.resample_poly``), multichannel audio is averaged to mono.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import soundfile

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class AudioError(ValueError):
    """A file cannot be used as audio; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def load_audio(path: str | Path, sample_rate: int = 16000, resample: bool = True) -> np.ndarray:
    """Decode an audio file to float32 mono at ``sample_rate``.

    Args:
        path: a wav, flac or ogg file.
        sample_rate: rate of the returned samples in Hz.
        resample: if False, a file at another rate is an error instead of being resampled.

    Returns:
        ``(n_samples,)`` float32 array in [-1, 1].

    Raises:
        AudioError: missing file, unsupported format, corrupt stream, empty file, or wrong rate
            with ``resample=False``.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as e:
        raise AudioError(path, f"unsupported format or not audio ({e})") from e
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as e:
        raise AudioError(path, f"corrupt stream ({e})") from e
    if info.frames > 0 and data.shape[0] < info.frames:
        raise AudioError(path, f"corrupt stream (decoded {data.shape[0]} of {info.frames} "
                               "samples)")
    if data.shape[0] == 0:
        raise AudioError(path, "empty file (0 samples)")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != sample_rate:
        if not resample:
            raise AudioError(path, f"sample rate is {rate} Hz; expected {sample_rate} Hz "
                                   "(resampling disabled)")
        mono = resample_audio(mono, rate, sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def resample_audio(wave: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample ``(n,)`` audio from ``rate_in`` to ``rate_out`` Hz with a polyphase FIR filter."""
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    if rate_in == rate_out:
        return np.asarray(wave, dtype=np.float32)
    from scipy.signal import resample_poly

    g = gcd(rate_in, rate_out)
    return resample_poly(wave, rate_out // g, rate_in // g).astype(np.float32)


def int16_to_float32(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM -> float32 in [-1, 1) (divides by 32768)."""
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16:
        raise ValueError(f"expected int16 samples, got {pcm.dtype}")
    return pcm.astype(np.float32) / 32768.0


def float32_to_int16(wave: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] -> int16 PCM, rounding and clipping values outside the range."""
    scaled = np.rint(np.asarray(wave, dtype=np.float32) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def as_float32(samples: np.ndarray) -> np.ndarray:
    """Accept int16 PCM or float audio and return float32 in [-1, 1]."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return int16_to_float32(samples)
    if samples.dtype.kind == "f":
        return samples.astype(np.float32, copy=False)
    raise ValueError(f"audio samples must be int16 or float, got {samples.dtype}")


def chunks(wave: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Yield consecutive ``(size,)`` slices of ``wave``; the last one may be shorter."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1 sample, got {size}")
    for start in range(0, len(wave), size):
        yield wave[start:start + size]


def find_audio(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Sorted audio files (wav, flac, ogg) below ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"audio folder {folder} does not exist")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.suffix.lower() in AUDIO_SUFFIXES)


@dataclass
class LoadReport:
    """What a batch load did: the decoded clips and the files it skipped, with reasons."""

    clips: list[tuple[Path, np.ndarray]] = field(default_factory=list)
    skipped: list[AudioError] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.clips)} loaded, {len(self.skipped)} skipped"


def load_many(paths: Iterable[str | Path], sample_rate: int = 16000) -> LoadReport:
    """Decode many files; each unusable one is skipped with one warning and listed in the report."""
    report = LoadReport()
    for path in paths:
        try:
            report.clips.append((Path(path), load_audio(path, sample_rate)))
        except AudioError as e:
            log.warning("skipping %s", e)
            report.skipped.append(e)
    if report.skipped:
        log.warning("%d file(s) skipped as unreadable", len(report.skipped))
    return report


def speech_bounds(wave: np.ndarray, sample_rate: int = 16000, frame_ms: float = 10.0,
                  below_peak_db: float = 35.0, above_floor_db: float = 12.0) -> tuple[float, float]:
    """Start and end (seconds) of the voiced part of a clean clip, by an energy endpoint.

    A 10 ms frame is voiced when its energy is within ``below_peak_db`` of the loudest frame and
    ``above_floor_db`` above the 10th-percentile frame (the clip's silence). Returns the first
    voiced frame's start and the last voiced frame's end; the whole clip if nothing qualifies.
    """
    frame = max(1, int(sample_rate * frame_ms / 1000))
    n = len(wave) // frame
    if n == 0:
        return 0.0, len(wave) / sample_rate
    energy = np.square(wave[:n * frame].astype(np.float64)).reshape(n, frame).mean(1)
    db = 10 * np.log10(energy + 1e-12)
    threshold = max(db.max() - below_peak_db, np.percentile(db, 10) + above_floor_db)
    voiced = np.flatnonzero(db >= threshold)
    if len(voiced) == 0:
        return 0.0, len(wave) / sample_rate
    return float(voiced[0] * frame / sample_rate), float((voiced[-1] + 1) * frame / sample_rate)
