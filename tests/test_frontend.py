"""Frontend invariants: streaming == clip for any chunking, numpy == torch, edge cases.

Tolerances: streaming vs clip max abs difference <= 1e-4 (measured ~5e-7; float32 FFT batches of
different size). numpy vs torch <= 1e-4 in log-mel units (measured ~1.5e-5: two FFT libraries,
float32).
The same bounds hold with the running mean normalisation on (``NORM``).
"""

import numpy as np
import pytest

from kws.core.config import ConfigError, FrontendConfig
from kws.features.logmel import StreamingFrontend, log_mel, mel_matrix, num_frames, window

STREAM_TOL = 1e-4
TORCH_TOL = 1e-4
CFG = FrontendConfig()
NORM = FrontendConfig(mean_norm_ms=500.0)


def speechlike(seconds=2.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    tone = 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (tone + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def stream(wave, sizes, cfg=CFG):
    fe = StreamingFrontend(cfg)
    out, start, i = [], 0, 0
    while start < len(wave):
        size = sizes[i % len(sizes)]
        out.append(fe.accept(wave[start:start + size]))
        start += size
        i += 1
    return np.concatenate(out)


def test_shapes_and_frame_count():
    wave = speechlike(1.0)
    feats = log_mel(wave)
    assert feats.shape == (98, 40) == (num_frames(16000, CFG), CFG.n_mels)
    assert feats.dtype == np.float32
    assert log_mel(np.zeros(399, np.float32)).shape == (0, 40)
    assert log_mel(np.zeros(400, np.float32)).shape == (1, 40)


@pytest.mark.parametrize("cfg", [CFG, NORM], ids=["plain", "mean_norm"])
@pytest.mark.parametrize("sizes", [[1], [7], [160], [320], [1000], [16000], [3, 500, 1, 2049]])
def test_streaming_equals_clip_for_any_chunking(sizes, cfg):
    wave = speechlike(1.3)
    expected = log_mel(wave, cfg)
    got = stream(wave, sizes, cfg)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= STREAM_TOL


def test_mean_norm_follows_its_definition():
    wave = speechlike(1.0)
    raw = log_mel(wave).astype(np.float64)
    alpha = NORM.hop_ms / NORM.mean_norm_ms  # 0.02 per frame
    m = raw[0].copy()
    expected = []
    for x in raw:
        m += alpha * (x - m)
        expected.append(x - m)
    got = log_mel(wave, NORM)
    assert np.abs(got - np.array(expected)).max() < 1e-4
    assert np.abs(got[0]).max() < 1e-5  # the mean starts at the first frame


def test_mean_norm_cancels_input_gain():
    # 20 dB quieter: raw log-mel values move by up to log(100) = 4.6; normalised ones stay within
    # 0.1 (measured 0.083, in the weakest bands where log_floor starts to count), median 1e-3
    wave = speechlike(1.0)
    quiet = wave * np.float32(0.1)
    shift = log_mel(wave) - log_mel(quiet)
    assert shift.min() > 4.5 and shift.max() < 4.61
    diff = np.abs(log_mel(wave, NORM) - log_mel(quiet, NORM))
    assert diff.max() < 0.1 and np.median(diff) < 1e-3


def test_mean_norm_state_is_reset():
    wave = speechlike(0.5)
    fe = StreamingFrontend(NORM)
    fe.accept(speechlike(0.7, seed=3))
    fe.reset()
    np.testing.assert_allclose(fe.accept(wave), log_mel(wave, NORM), atol=STREAM_TOL)


def test_reset_starts_a_new_stream():
    wave = speechlike(0.5)
    fe = StreamingFrontend()
    fe.accept(speechlike(0.3, seed=5)[:1234])
    fe.reset()
    np.testing.assert_allclose(fe.accept(wave), log_mel(wave), atol=STREAM_TOL)


def test_silence_hits_the_log_floor_exactly():
    feats = log_mel(np.zeros(4000, np.float32))
    np.testing.assert_allclose(feats, np.log(np.float32(CFG.log_floor)), rtol=1e-6)


def test_full_scale_clipping_and_dc_are_finite():
    square = np.sign(np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.float32)
    dc = np.full(8000, 1.0, np.float32)
    for wave in (square, dc, -dc):
        feats = log_mel(wave)
        assert np.isfinite(feats).all()
    # DC energy sits in the lowest bands only: the first band (20 Hz edge) far above the top band
    feats = log_mel(dc)
    assert feats[0, 0] > feats[0, -1] + 10


def test_tone_peaks_in_the_right_band():
    t = np.arange(16000) / 16000
    feats = log_mel((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    centers = (mel_matrix(CFG) * np.linspace(0, 8000, 257)[:, None]).sum(0) / mel_matrix(CFG).sum(0)
    assert abs(centers[feats.mean(0).argmax()] - 1000) < 100


def test_window_and_mel_matrix_definition():
    w = window(CFG)
    assert w.shape == (400,) and w[0] == 0 and abs(w[200] - 1) < 1e-6
    m = mel_matrix(CFG)
    assert m.shape == (257, 40) and m.min() >= 0 and abs(m.max() - 1) < 0.05
    assert (m.sum(0) > 0).all()  # no empty filter


def test_other_mel_count_is_configurable():
    cfg = FrontendConfig(n_mels=64)
    assert log_mel(speechlike(0.5), cfg).shape[1] == 64
    assert stream(speechlike(0.5), [77], cfg).shape[1] == 64


def test_bad_configs_and_inputs_are_named():
    with pytest.raises(ConfigError,
                       match=r"frontend\.n_fft = 256 .* >= window length in samples \(400\)"):
        FrontendConfig(n_fft=256)
    with pytest.raises(ConfigError, match=r"frontend\.sample_rate = 44100"):
        FrontendConfig(sample_rate=44100)
    with pytest.raises(ConfigError, match=r"frontend\.mean_norm_ms = 5.0 .* 0 \(off\) or at least "
                                          r"hop_ms \(10.0\)"):
        FrontendConfig(mean_norm_ms=5.0)
    with pytest.raises(ValueError, match=r"expected mono audio .* got shape \(2, 10\)"):
        log_mel(np.zeros((2, 10), np.float32))


@pytest.mark.parametrize("cfg", [CFG, NORM], ids=["plain", "mean_norm"])
def test_numpy_equals_torch(cfg):
    torch = pytest.importorskip("torch", reason="torch is in the train extra")
    from kws.features.logmel import log_mel_torch

    waves = np.stack([speechlike(1.0, seed=s) for s in range(3)])
    waves[1] = 0.0
    got = log_mel_torch(torch.from_numpy(waves), cfg).numpy()
    expected = np.stack([log_mel(w, cfg) for w in waves])
    assert got.shape == expected.shape == (3, 98, 40)
    assert np.abs(got - expected).max() <= TORCH_TOL
