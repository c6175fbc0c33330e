"""Waveform augmentation (numpy) and SpecAugment masks (torch), all driven by a seeded Generator.

Waveform functions take and return ``(n_samples,)`` float32 at 16 kHz. The same ``rng`` and inputs
always give the same output, so a training run is reproducible from its seed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.signal import fftconvolve, resample_poly

from kws.core.mixing import fit_length, rms
from kws.features.cache import cache_dir as default_cache_dir

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)


def colored_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    freqs = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n=n)
    return (noise / rms(noise)).astype(np.float32)


def babble(n: int, speech: list[np.ndarray], rng: np.random.Generator,
           talkers: tuple[int, int] = (3, 7)) -> np.ndarray:
    """Several negative-speech recordings summed at equal loudness, unit RMS."""
    count = int(rng.integers(talkers[0], talkers[1] + 1))
    total = np.zeros(n, dtype=np.float64)
    for _ in range(count):
        part = fit_length(speech[int(rng.integers(len(speech)))], n, rng)
        total += part / rms(part)
    return (total / rms(total)).astype(np.float32)


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (tempo and pitch), by polyphase resampling."""
    up = 100
    down = int(round(up * factor))
    if down == up:
        return x
    return resample_poly(x, up, down).astype(np.float32)


def change_tempo(x: np.ndarray, factor: float, frame: int = 384, tolerance: int = 128
                 ) -> np.ndarray:
    """Play ``x`` ``factor`` times faster with pitch and formants kept (WSOLA).

    Hann frames of ``frame`` samples (24 ms at 16 kHz) are overlap-added every ``frame // 2``
    output samples; each is taken from within ``tolerance`` samples of its nominal input position
    where it best continues the previous frame, so the waveform's periods line up. The output has
    ``round(len(x) / factor)`` samples.
    """
    if factor <= 0:
        raise ValueError(f"tempo factor must be > 0, got {factor}")
    n_out = round(len(x) / factor)
    if factor == 1.0 or n_out == 0:
        return x.astype(np.float32)
    hop = frame // 2
    window = np.hanning(frame).astype(np.float32)
    padded = np.concatenate([np.zeros(tolerance, np.float32), x.astype(np.float32),
                             np.zeros(2 * (frame + tolerance) + int(hop * factor), np.float32)])
    out = np.zeros(n_out + frame, np.float32)
    norm = np.zeros(n_out + frame, np.float32)
    start = tolerance  # where the previous frame was taken from, in ``padded``
    for k in range(n_out // hop + 1):
        if k:
            follow = padded[start + hop:start + hop + frame]  # what would continue naturally
            nominal = tolerance + round(k * hop * factor)
            region = padded[nominal - tolerance:nominal + tolerance + frame]
            start = nominal - tolerance + int(np.argmax(np.correlate(region, follow, "valid")))
        out[k * hop:k * hop + frame] += padded[start:start + frame] * window
        norm[k * hop:k * hop + frame] += window
    return (out / np.maximum(norm, 1e-3))[:n_out].astype(np.float32)


def vtlp(wave: np.ndarray, alpha: float, sample_rate: int = 16000) -> np.ndarray:
    """Vocal tract length perturbation: warp the STFT frequency axis by ``alpha`` (formants
    move by ``alpha``, timing and pitch stay), piecewise linear above 4.8 kHz so the band edge
    stays put. ``(n,)`` in, ``(n,)`` float32 out."""
    from scipy.signal import istft, stft

    if alpha == 1.0:
        return np.asarray(wave, dtype=np.float32)
    n, frame = len(wave), 512  # a clip shorter than one STFT frame is padded to one
    _, _, spec = stft(np.pad(wave, (0, max(0, frame - n))), fs=sample_rate, nperseg=frame,
                      noverlap=frame * 3 // 4)
    top = spec.shape[0] - 1
    bins = np.arange(spec.shape[0], dtype=float)
    edge = 0.6 * top
    source = np.where(bins <= edge * min(alpha, 1), bins / alpha,
                      edge / alpha + (bins - edge) * (top - edge / alpha) / max(1e-6, top - edge))
    source = np.clip(source, 0, top)
    low = np.floor(source).astype(int)
    frac = (source - low)[:, None]
    warped = spec[low] * (1 - frac) + spec[np.minimum(low + 1, top)] * frac
    _, out = istft(warped, fs=sample_rate, nperseg=frame, noverlap=frame * 3 // 4)
    return out[:n].astype(np.float32)


def gain_db(x: np.ndarray, db: float) -> np.ndarray:
    """Scale by ``db`` decibels, clipped to [-1, 1] like a real ADC."""
    return np.clip(x * np.float32(10 ** (db / 20)), -1.0, 1.0)


def random_eq(x: np.ndarray, rng: np.random.Generator, max_db: float = 8.0,
              sample_rate: int = 16000) -> np.ndarray:
    """A random microphone/channel colour: a smooth gain curve over log frequency (4 cosines, up
    to ``max_db`` dB, plus a tilt), and with probability 0.3 a low-pass roll-off of 24 dB/kHz
    from 3-7 kHz. Gain is 0 dB on average over 300-3000 Hz, so speech keeps its level. ``(n,)``
    in, ``(n,)`` float32 out."""
    f = np.fft.rfftfreq(len(x), 1 / sample_rate)
    u = np.log(np.maximum(f, 50.0) / 50.0) / np.log(sample_rate / 2 / 50.0)  # 0..1
    k = np.arange(1, 5)
    amp = rng.uniform(-1, 1, 4) * max_db / k
    db = (amp[:, None] * np.cos(np.pi * k[:, None] * u[None] + rng.uniform(0, np.pi, 4)[:, None])
          ).sum(0)
    db += rng.uniform(-1, 1) * max_db * (u - 0.5)
    if rng.random() < 0.3:
        db -= 24 * np.clip((f - rng.uniform(3000, 7000)) / 1000, 0, None)
    db -= db[(f > 300) & (f < 3000)].mean()
    return np.fft.irfft(np.fft.rfft(x) * 10 ** (db / 20), len(x)).astype(np.float32)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with an impulse response, keep the length and the direct path's timing."""
    direct = int(np.argmax(np.abs(rir)))
    wet = fftconvolve(x, rir)[direct:direct + len(x)]
    return (wet * (rms(x) / rms(wet))).astype(np.float32)


def simulate_rirs(count: int, seed: int, sample_rate: int = 16000,
                  cache_dir: str | Path | None = None) -> list[np.ndarray]:
    """Room impulse responses of random shoebox rooms (image method, pyroomacoustics).

    Rooms 3-10 m wide, 2.5-4 m high, RT60 0.2-0.8 s; source and microphone at random places.
    Cached in ``cache_dir`` (default :func:`kws.features.cache.cache_dir`) as
    ``rirs-<count>-<seed>.npz``.
    """
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache / f"rirs-{count}-{seed}-{sample_rate}.npz"
    if path.is_file():
        with np.load(path) as saved:
            return [saved[k] for k in sorted(saved.files, key=int)]
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    rirs = []
    for _ in range(count):
        dims = np.array([rng.uniform(3, 10), rng.uniform(3, 8), rng.uniform(2.5, 4)])
        rt60 = rng.uniform(0.2, 0.8)
        absorption, max_order = pra.inverse_sabine(rt60, dims)
        room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption),
                           max_order=min(max_order, 12))
        room.add_source(rng.uniform(0.5, dims - 0.5))
        room.add_microphone(rng.uniform(0.5, dims - 0.5))
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float32)[: int(0.8 * sample_rate)]
        rirs.append(rir / np.abs(rir).max())
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{str(i): r for i, r in enumerate(rirs)})
    log.info("simulated %d room impulse responses -> %s", count, path)
    return rirs


def spec_augment(feats: "torch.Tensor", max_time: int, max_freq: int,
                 generator: "torch.Generator") -> "torch.Tensor":
    """One time mask and one frequency mask per sequence, filled with the sequence mean.

    Args:
        feats: ``(batch, frames, n_mels)``.
        max_time, max_freq: largest mask width in frames / bands (0 disables that mask).
    """
    import torch

    out = feats.clone()
    batch, frames, bands = feats.shape
    fill = feats.mean(dim=(1, 2))
    for axis, limit, size in ((1, max_time, frames), (2, max_freq, bands)):
        if limit <= 0:
            continue
        width = torch.randint(0, limit + 1, (batch,), generator=generator)
        start = (torch.rand(batch, generator=generator) * (size - width)).long()
        pos = torch.arange(size)
        mask = (pos[None] >= start[:, None]) & (pos[None] < (start + width)[:, None])
        mask = mask.to(feats.device)
        mask = mask[:, :, None] if axis == 1 else mask[:, None, :]
        out = torch.where(mask, fill[:, None, None], out)
    return out
