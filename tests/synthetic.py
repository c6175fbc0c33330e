"""A tiny synthetic corpus the tests build themselves: no shared data needed.

Keyword "up": a rising chirp; keyword "down": a falling chirp; negatives: noise bursts and steady
tones. Numbered files 0..N-1 so holdout ranges and speaker blocks apply.
"""

from pathlib import Path

import numpy as np
import soundfile

SR = 16000


def chirp(f0: float, f1: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * seconds))
    env = np.sin(np.pi * t / seconds) ** 2
    return (0.3 * env * np.sin(phase) + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def padded(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    pad = lambda: np.zeros(int(rng.uniform(0.2, 0.5) * SR), np.float32)  # noqa: E731
    out = np.concatenate([pad(), x, pad()])
    return out + 0.002 * rng.standard_normal(len(out)).astype(np.float32)


def make_corpus(root: Path, clips: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name, (f0, f1) in {"up": (300, 1500), "down": (1500, 300)}.items():
        folder = root / "keywords" / name
        folder.mkdir(parents=True)
        for i in range(clips):
            s = rng.uniform(0.8, 1.2)
            x = chirp(f0 * s, f1 * s, rng.uniform(0.4, 0.6), rng)
            soundfile.write(folder / f"{i}.wav", padded(x, rng), SR)
    neg = root / "negatives"
    neg.mkdir()
    for i in range(30):
        t = np.arange(int(rng.uniform(2, 4) * SR)) / SR
        tone = 0.2 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t)
        burst = rng.standard_normal(len(t)) * 0.1 * (np.sin(2 * np.pi * rng.uniform(1, 4) * t) > 0)
        soundfile.write(neg / f"spk{i % 10:02d}-1-{i}.wav", (tone + burst).astype(np.float32), SR)
    noise = root / "noise"
    noise.mkdir()
    soundfile.write(noise / "white.wav", (0.1 * rng.standard_normal(3 * SR)).astype(np.float32),
                    SR)
    return root


def write_config(root: Path, epochs: int = 2, sequences: int = 64, **train) -> Path:
    extra = "".join(f"{k} = {v}\n" for k, v in train.items())
    path = root / "tiny.toml"
    path.write_text(f"""
[model]
keywords = ["up", "down"]
proj_dim = 16
hidden = 16
[data]
keyword_dirs = {{ up = ["keywords/up"], down = ["keywords/down"] }}
holdout = {{ up = [[30, 39]] }}
negative_dirs = ["negatives"]
noise_dirs = ["noise"]
val_fraction = 0.2
test_fraction = 0.1
negative_test_fraction = 0.2
[augment]
n_rirs = 2
[train]
epochs = {epochs}
sequences_per_epoch = {sequences}
sequence_s = 2.0
batch_size = 16
patience = 5
{extra}""")
    return path


def write_embedding_config(root: Path, epochs: int = 3, sequences: int = 64, **train) -> Path:
    """:func:`write_config` on the speech embedding frontend (one step per embedding)."""
    from kws.core.config import SPEECH_EMBEDDING

    path = write_config(root, epochs=epochs, sequences=sequences, **train)
    text = path.read_text().replace("[model]\n", "[model]\nstack_frames = 1\n").replace(
        "[augment]\n", "[augment]\ntime_mask = 0\nfreq_mask = 0\n")
    frontend = "".join(f"{k} = {v!r}\n" for k, v in SPEECH_EMBEDDING.items())
    path.write_text(f'[frontend]\nkind = "speech_embedding"\n{frontend}{text}')
    return path
