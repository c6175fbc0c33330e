"""Log-mel filterbank features: the one definition used by training, runtime and export.

Framing: the rule of :mod:`kws.core.timing` (frame ``i`` covers samples
``[i * hop, i * hop + window)``, no padding or centering), so a stream produces exactly the frames
a whole clip produces.

Per frame: periodic Hann window -> zero-padded ``n_fft`` real FFT -> power spectrum ->
``(n_fft // 2 + 1, n_mels)`` HTK mel matrix -> ``log(energy + log_floor)``.

Running mean normalisation (when ``cfg.mean_norm_ms > 0``): per band, ``m_0 = x_0``,
``m_t = m_{t-1} + a * (x_t - m_{t-1})`` with ``a = hop_ms / mean_norm_ms``, and the frame becomes
``x_t - m_t``. A gain ``g`` on the audio adds ``log(g**2)`` to every log-mel value and so cancels
(up to the floor). The mean is stream state. numpy and torch unroll the recurrence over blocks of
16 frames into one matrix product (:func:`mean_filter`); the firmware C runs it frame by frame;
all agree to float32 rounding. The model also holds a fixed feature mean and
standard deviation measured on its training data.

Two implementations share the window and mel matrix built below:

* :class:`StreamingFrontend` / :func:`log_mel` - numpy, used by the runtime (no torch).
* :func:`log_mel_torch` - batched torch, used for training (on GPU when there is one).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from kws.core import timing
from kws.core.config import FrontendConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch

NORM_BLOCK = 16  # frames per matrix product in the running mean


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``2595 * log10(1 + hz / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def window(cfg: FrontendConfig) -> np.ndarray:
    """Periodic Hann window, ``(window_samples,)`` float32."""
    n = cfg.window_samples
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


@lru_cache(maxsize=8)
def mel_matrix(cfg: FrontendConfig) -> np.ndarray:
    """Triangular mel filters, ``(n_fft // 2 + 1, n_mels)`` float32, unnormalized (peak 1)."""
    n_bins = cfg.n_fft // 2 + 1
    freqs = np.linspace(0.0, cfg.sample_rate / 2, n_bins)
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.f_max), cfg.n_mels + 2))
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (center - lower)
    falling = (upper - freqs[None, :]) / (upper - center)
    return np.maximum(0.0, np.minimum(rising, falling)).T.astype(np.float32)


def num_frames(n_samples: int, cfg: FrontendConfig) -> int:
    """Number of whole frames in ``n_samples`` samples."""
    return timing.num_frames(n_samples, cfg.window_samples, cfg.hop_samples)


def log_mel(wave: np.ndarray, cfg: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """Features of a whole clip.

    Args:
        wave: ``(n_samples,)`` float audio at ``cfg.sample_rate``.

    Returns:
        ``(n_frames, n_mels)`` float32 natural-log mel energies.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n_samples,), got shape {wave.shape}")
    return subtract_running_mean(_Filterbank(cfg).frames(np.ascontiguousarray(wave)), cfg)[0]


def subtract_running_mean(feats: np.ndarray, cfg: FrontendConfig, mean: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply the running mean normalisation (module docstring) to consecutive frames.

    Args:
        feats: ``(n_frames, n_mels)`` float32 log-mel.
        mean: ``(n_mels,)`` running mean after the previous frame; None at the start of a stream.

    Returns:
        (normalised frames, running mean after the last frame). Unchanged when it is off.
    """
    if not cfg.mean_norm_ms or not len(feats):
        return feats, mean
    m = feats[0] if mean is None else mean
    out = np.empty_like(feats)
    for start in range(0, len(feats), NORM_BLOCK):
        x = feats[start:start + NORM_BLOCK]
        weights, decay = mean_filter(cfg.hop_ms / cfg.mean_norm_ms, len(x))
        means = weights @ x + decay * m
        out[start:start + len(x)] = x - means
        m = means[-1]
    return out, m


@lru_cache(maxsize=64)
def mean_filter(alpha: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The running mean over ``n`` frames as one product: ``means = weights @ x + decay * m``.

    Unrolls ``m_t = m_{t-1} + alpha * (x_t - m_{t-1})`` from the mean ``m`` before the block:
    ``weights[t, j] = alpha * (1 - alpha) ** (t - j)`` for ``j <= t``, ``decay[t] = (1 - alpha) **
    (t + 1)``. Returns float32 ``(n, n)`` and ``(n, 1)``.
    """
    t = np.arange(n)
    lag = t[:, None] - t[None, :]
    weights = np.where(lag >= 0, alpha * (1.0 - alpha) ** np.maximum(lag, 0), 0.0)
    return weights.astype(np.float32), ((1.0 - alpha) ** (t + 1)).astype(np.float32)[:, None]


class _Filterbank:
    """The window, mel matrix and floor of one config, held for repeated use on a hot path."""

    def __init__(self, cfg: FrontendConfig) -> None:
        self.win = window(cfg)
        self.mel = mel_matrix(cfg)
        self.floor = np.float32(cfg.log_floor)
        self.n_fft, self.size, self.hop = cfg.n_fft, cfg.window_samples, cfg.hop_samples
        self.empty = np.zeros((0, cfg.n_mels), dtype=np.float32)
        # zero-padded FFT input reused for the few frames of a streaming call
        self._padded = np.zeros((self.STREAM_FRAMES, cfg.n_fft), dtype=np.float32)

    STREAM_FRAMES = 16

    def frames(self, wave: np.ndarray) -> np.ndarray:
        """``(n,)`` contiguous float32 -> ``(n_frames, n_mels)`` log-mel of every whole frame."""
        n = timing.num_frames(len(wave), self.size, self.hop)
        if n == 0:
            return self.empty
        step = wave.strides[0]
        framed = np.lib.stride_tricks.as_strided(wave, shape=(n, self.size),
                                                 strides=(self.hop * step, step), writeable=False)
        if n <= self.STREAM_FRAMES:
            padded = self._padded[:n]
            np.multiply(framed, self.win, out=padded[:, :self.size])
            spectrum = np.fft.rfft(padded, axis=-1)
        else:
            spectrum = np.fft.rfft(framed * self.win, n=self.n_fft, axis=-1)
        power = np.square(spectrum.real) + np.square(spectrum.imag)
        return np.log(power @ self.mel + self.floor)


class StreamingFrontend:
    """Log-mel features from audio pushed in chunks of any size (1 sample to minutes).

    Keeps the samples that do not yet complete a frame, so the concatenated output of any chunking
    equals :func:`log_mel` of the whole signal.

    Example::

        fe = StreamingFrontend()
        for chunk in mic:                 # float32 chunks, any length
            feats = fe.accept(chunk)      # (k, n_mels), k >= 0
    """

    def __init__(self, cfg: FrontendConfig = FrontendConfig()) -> None:
        self.cfg = cfg
        self._bank = _Filterbank(cfg)
        self._pending = np.zeros(0, dtype=np.float32)
        self._mean: np.ndarray | None = None

    def reset(self) -> None:
        """Forget buffered samples and the running mean (start of a new stream)."""
        self._pending = np.zeros(0, dtype=np.float32)
        self._mean = None

    @property
    def pending_samples(self) -> int:
        """Samples held back because they do not complete a frame yet."""
        return len(self._pending)

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """Push float32 samples (any length); return the ``(k, n_mels)`` frames they complete."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        buf = np.concatenate((self._pending, samples))
        bank = self._bank
        self._pending = buf[timing.num_frames(len(buf), bank.size, bank.hop) * bank.hop:]
        feats, self._mean = subtract_running_mean(bank.frames(buf), self.cfg, self._mean)
        return feats


def log_mel_torch(waves: "torch.Tensor", cfg: FrontendConfig = FrontendConfig()) -> "torch.Tensor":
    """Batched features for training, on the tensor's device.

    Args:
        waves: ``(batch, n_samples)`` float audio.

    Returns:
        ``(batch, n_frames, n_mels)`` float32, equal to :func:`log_mel` per row (same window, mel
        matrix, floor and running mean; differences are float rounding, ~1e-5).
    """
    import torch

    if waves.dim() != 2:
        raise ValueError(f"expected (batch, n_samples), got shape {tuple(waves.shape)}")
    if waves.shape[1] < cfg.window_samples:
        return waves.new_zeros((waves.shape[0], 0, cfg.n_mels))
    frames = waves.float().unfold(1, cfg.window_samples, cfg.hop_samples)
    win = torch.from_numpy(window(cfg)).to(waves.device)
    mel = torch.from_numpy(mel_matrix(cfg)).to(waves.device)
    spectrum = torch.fft.rfft(frames * win, n=cfg.n_fft, dim=-1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    feats = torch.log(power @ mel + cfg.log_floor)
    if not cfg.mean_norm_ms:
        return feats
    m = feats[:, :1]
    out = torch.empty_like(feats)
    for start in range(0, feats.shape[1], NORM_BLOCK):
        x = feats[:, start:start + NORM_BLOCK]
        weights, decay = (torch.from_numpy(a).to(feats.device)
                          for a in mean_filter(cfg.hop_ms / cfg.mean_norm_ms, x.shape[1]))
        means = weights @ x + decay * m
        out[:, start:start + x.shape[1]] = x - means
        m = means[:, -1:]
    return out
