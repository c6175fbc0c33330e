"""Mixing noise into a signal at a stated signal-to-noise ratio (evaluation and training).

Functions take and return ``(n_samples,)`` float32 audio; a seeded ``numpy.random.Generator``
picks offsets, so the same inputs always give the same mix.
"""

from __future__ import annotations

import numpy as np

PEAK_FRAME = 2048  # samples per frame for the loudest-frame SNR (as the Picovoice benchmark)


def fit_length(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``noise`` from a random offset, tiled when the noise is shorter."""
    if len(noise) < n:
        noise = np.tile(noise, n // len(noise) + 1)
    start = int(rng.integers(0, len(noise) - n + 1))
    return noise[start:start + n]


def rms(x: np.ndarray) -> float:
    """Root mean square of ``x`` (float64 sum; never 0, so it can divide)."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def peak_frame_energy(x: np.ndarray, frame: int = PEAK_FRAME) -> float:
    """Energy of the loudest ``frame``-sample frame (whole signal if shorter)."""
    n = len(x) // frame
    if n == 0:
        return float(np.sum(np.square(x, dtype=np.float64))) + 1e-12
    frames = x[:n * frame].astype(np.float64).reshape(n, frame)
    return float(np.square(frames).sum(1).max()) + 1e-12


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float,
               method: str = "rms") -> np.ndarray:
    """``signal + g * noise`` with ``g`` set so the signal-to-noise ratio is ``snr_db``.

    Args:
        signal, noise: ``(n,)`` float32 of equal length.
        method: "rms" compares mean power over the whole signal (training); "peak" compares the
            loudest 2048-sample frames, as the Picovoice wake-word benchmark does (evaluation).
    """
    if len(signal) != len(noise):
        raise ValueError(f"signal and noise lengths differ: {len(signal)} vs {len(noise)}")
    if method == "rms":
        ratio = (rms(signal) / rms(noise)) ** 2
    elif method == "peak":
        ratio = peak_frame_energy(signal) / peak_frame_energy(noise)
    else:
        raise ValueError(f"method {method!r} is not one of 'rms', 'peak'")
    gain = np.sqrt(ratio / 10 ** (snr_db / 10))
    return (signal + gain * noise).astype(np.float32)
