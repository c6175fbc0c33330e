"""Audio input: decode files to float32 mono at 16 kHz, convert sample formats, cut chunks.

The contract used everywhere else: a 1-D ``numpy.float32`` array in [-1, 1] at
``FrontendConfig.sample_rate`` (16 kHz by default). Files are decoded with ``soundfile``
(wav, flac, ogg) block by block; other rates are resampled with a polyphase FIR filter in
bounded blocks (:mod:`kws.core.resample`), multichannel audio is averaged to mono. Nothing in a
file is trusted: the header's rate, channels and length are bounded before anything is decoded,
a WAV shorter than its header says is reported as truncated, and NaN or infinite samples are an
error.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import soundfile

from kws.core.resample import StreamResampler, check_rate

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class AudioError(ValueError):
    """A file cannot be used as audio; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


MAX_SECONDS = 4 * 3600.0  # the longest file load_audio decodes whole (iter_audio: any length)
MAX_CHANNELS = 64
BLOCK_FRAMES = 1 << 17  # frames decoded at a time


def declared_wav_frames(path: Path, block_align: int) -> int | None:
    """Frames a WAV file's ``data`` chunk header declares, when it declares a size (None for
    other formats and for streamed WAVs whose size field is 0 or 0xFFFFFFFF)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while chunk := f.read(8):
            if len(chunk) < 8:
                return None
            name, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if name == b"data":
                return None if size in (0, 0xFFFFFFFF) else size // max(1, block_align)
            f.seek(size + size % 2, 1)
    return None


def audio_info(path: str | Path) -> soundfile._SoundFileInfo:
    """The header of an audio file, checked before anything is decoded: a rate of
    ``MIN_RATE..MAX_RATE`` Hz, 1..64 channels, at least one frame, and (WAV) no fewer bytes than
    the header declares.

    Raises:
        AudioError: missing file, not audio, or a header out of those bounds.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as e:
        raise AudioError(path, f"unsupported format or not audio ({e})") from e
    try:
        check_rate(info.samplerate, "sample rate")
    except ValueError as e:
        raise AudioError(path, str(e)) from None
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise AudioError(path, f"{info.channels} channels; expected 1..{MAX_CHANNELS}")
    if info.frames <= 0:
        raise AudioError(path, "empty file (0 samples)")
    width = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4,
             "DOUBLE": 8, "ULAW": 1, "ALAW": 1}.get(info.subtype)
    declared = declared_wav_frames(path, width * info.channels) if width else None
    if declared is not None and declared > info.frames:
        raise AudioError(path, f"truncated: the header declares {declared} frames, the file "
                               f"holds {info.frames}")
    return info


def iter_audio(path: str | Path, sample_rate: int = 16000,
               block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Decode a file block by block: float32 mono pieces at ``sample_rate``, whose
    concatenation is what :func:`load_audio` returns; memory stays bounded whatever the
    length.

    Raises:
        AudioError: as :func:`audio_info`; a corrupt stream; NaN or infinite samples.
    """
    path = Path(path)
    info = audio_info(path)
    resampler = StreamResampler(info.samplerate, sample_rate)
    decoded = 0
    try:
        with soundfile.SoundFile(str(path)) as f:
            for block in f.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 \
                    else block[:, 0]
                bad = np.flatnonzero(~np.isfinite(mono))
                if len(bad):
                    raise AudioError(path, f"NaN or infinite sample at "
                                           f"{(decoded + bad[0]) / info.samplerate:.3f} s")
                decoded += len(mono)
                yield resampler.process(mono)
    except (soundfile.LibsndfileError, RuntimeError) as e:
        raise AudioError(path, f"corrupt stream ({e})") from e
    if decoded < info.frames:
        raise AudioError(path, f"corrupt stream (decoded {decoded} of {info.frames} samples)")
    yield resampler.flush()


def load_audio(path: str | Path, sample_rate: int = 16000, resample: bool = True,
               max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Decode an audio file to float32 mono at ``sample_rate``.

    Args:
        path: a wav, flac or ogg file.
        sample_rate: rate of the returned samples in Hz.
        resample: if False, a file at another rate is an error instead of being resampled.
        max_seconds: longer files are refused before decoding (stream them with
            :func:`iter_audio`).

    Returns:
        ``(n_samples,)`` float32 array in [-1, 1].

    Raises:
        AudioError: missing file, unsupported format, a header out of bounds, corrupt or
            truncated stream, NaN/Inf samples, a file too long, or a wrong rate with
            ``resample=False``.
    """
    info = audio_info(path)
    if info.frames / info.samplerate > max_seconds:
        raise AudioError(path, f"{info.frames / info.samplerate:.1f} s long; at most "
                               f"{max_seconds:g} s ({max_seconds / 3600:.3g} h) is decoded whole "
                               "(kws detect streams longer files)")
    if info.samplerate != sample_rate and not resample:
        raise AudioError(path, f"sample rate is {info.samplerate} Hz; expected {sample_rate} Hz "
                               "(resampling disabled)")
    return np.ascontiguousarray(np.concatenate(list(iter_audio(path, sample_rate))))


def resample_audio(wave: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample ``(n,)`` audio from ``rate_in`` to ``rate_out`` Hz (polyphase FIR filter)."""
    resampler = StreamResampler(rate_in, rate_out)
    return np.concatenate([resampler.process(wave), resampler.flush()])


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
    """Sorted audio files (wav, flac, ogg) below ``folder``, following symlinked folders (each
    real folder is read once, so a link back to a parent does not loop)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"audio folder {folder} does not exist")
    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs.clear()
            continue
        seen.add(real)
        found += [Path(root) / f for f in files if Path(f).suffix.lower() in AUDIO_SUFFIXES]
        if not recursive:
            break
    return sorted(found)


@dataclass
class LoadReport:
    """What a batch load did: the decoded clips and the files it skipped, with reasons."""

    clips: list[tuple[Path, np.ndarray]] = field(default_factory=list)
    skipped: list[AudioError] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.clips)} loaded, {len(self.skipped)} skipped"


def load_many(paths: Iterable[str | Path], sample_rate: int = 16000,
              threads: int | None = None) -> LoadReport:
    """Decode many files, in order, on ``threads`` threads (default one per core: the decoders
    and the resampler work outside Python's lock); each unusable one is skipped with one
    warning and listed in the report."""
    def one(path: str | Path) -> np.ndarray | AudioError:
        try:
            return load_audio(path, sample_rate)
        except AudioError as e:
            return e

    paths = list(paths)
    report = LoadReport()
    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
        for path, result in zip(paths, pool.map(one, paths)):
            if isinstance(result, AudioError):
                log.warning("skipping %s", result)
                report.skipped.append(result)
            else:
                report.clips.append((Path(path), result))
    if report.skipped:
        log.warning("%d file(s) skipped as unreadable", len(report.skipped))
    return report


DIGITAL_SILENCE_DB = -100.0  # frame energy (dBFS) below one 16-bit step: padding, not a room


def speech_bounds(wave: np.ndarray, sample_rate: int = 16000, frame_ms: float = 10.0,
                  below_peak_db: float = 35.0, above_floor_db: float = 12.0,
                  max_gap_s: float = 0.25, segment_db: float = 20.0) -> tuple[float, float]:
    """Start and end (seconds) of the voiced part of a clean clip, by an energy endpoint.

    A 10 ms frame is voiced when its energy is within ``below_peak_db`` of the loudest frame and
    ``above_floor_db`` above the 10th-percentile frame (the clip's silence; digital silence
    below -100 dBFS, such as zeros padded around a recording, is not a floor). Voiced frames
    less than ``max_gap_s`` apart form segments; a segment whose loudest frame is more than
    ``segment_db`` below the clip's is background (a noisy room's bumps, a click), not speech.
    Returns the start of the first speech segment and the end of the last; the whole clip if
    nothing qualifies.
    """
    frame = max(1, int(sample_rate * frame_ms / 1000))
    n = len(wave) // frame
    if n == 0:
        return 0.0, len(wave) / sample_rate
    energy = np.square(wave[:n * frame].astype(np.float64)).reshape(n, frame).mean(1)
    db = 10 * np.log10(energy + 1e-12)
    sound = db[db > DIGITAL_SILENCE_DB]
    floor = np.percentile(sound if len(sound) else db, 10)
    voiced = np.flatnonzero(db >= max(db.max() - below_peak_db, floor + above_floor_db))
    if len(voiced) == 0:
        return 0.0, len(wave) / sample_rate
    breaks = np.flatnonzero(np.diff(voiced) * frame > max_gap_s * sample_rate) + 1
    speech = [seg for seg in np.split(voiced, breaks) if db[seg].max() >= db.max() - segment_db]
    return float(speech[0][0] * frame / sample_rate), float((speech[-1][-1] + 1) * frame
                                                            / sample_rate)
