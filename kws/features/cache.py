"""Features kept on disk, so that the same audio is not run through the speech embedding twice.

Scoring the same test audio again (another model, or the next phrase of a benchmark, with the
same frontend) reads its embeddings from ``<cache>/features/<frontend key>/<digest>.npy``
instead of running the embedding network. The frontend key covers the frontend settings, the
source of the feature modules and the embedding graphs; the digest is the SHA-256 of the
recording's float32 samples, so a changed file, or other noise mixed in, is another entry.
Log-mel features take less time to compute than to read and are never cached. The cache lives in
``$KWS_CACHE`` (default ``~/.cache/kws``); deleting it only costs time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from kws.core.config import FrontendConfig, to_dict
from kws.features import features

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent
SOURCES = ("__init__.py", "embedding.py", "speech_embedding/melspectrogram.onnx",
           "speech_embedding/embedding_model.onnx")


def cache_dir() -> Path:
    """Where derived data that can be rebuilt is kept: ``$KWS_CACHE`` or ``~/.cache/kws``."""
    return Path(os.environ.get("KWS_CACHE") or Path.home() / ".cache" / "kws")


def frontend_key(cfg: FrontendConfig) -> str:
    """A hex digest of the frontend settings and of the code and graphs that compute them."""
    h = hashlib.sha256(json.dumps(to_dict(cfg), sort_keys=True).encode())
    for name in SOURCES:
        h.update((PACKAGE / name).read_bytes())
    return h.hexdigest()[:32]


class FeatureCache:
    """``cache(wave)`` is ``features(wave, cfg)``, read from disk when computed before.

    Args:
        cfg: the frontend.
        root: the cache folder (default :func:`cache_dir`).
    """

    def __init__(self, cfg: FrontendConfig, root: Path | None = None) -> None:
        self.cfg = cfg
        self.folder = None
        if cfg.kind == "speech_embedding":
            self.folder = (root or cache_dir()) / "features" / frontend_key(cfg)
        self.hits = self.misses = 0

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        """``(n_frames, n_mels)`` float32 features of ``wave`` (``(n,)`` float audio)."""
        if self.folder is None:
            return features(wave, self.cfg)
        wave = np.ascontiguousarray(wave, dtype=np.float32)
        path = self.folder / f"{hashlib.sha256(wave.tobytes()).hexdigest()[:40]}.npy"
        try:
            out = np.load(path, allow_pickle=False)
            self.hits += 1
            return out
        except (OSError, ValueError) as exc:
            if path.exists():
                log.warning("feature cache %s is unreadable (%s): computing it again", path, exc)
        out = features(wave, self.cfg)
        self.misses += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as f:  # atomic: a partial file never takes the entry's name
            np.save(f, out, allow_pickle=False)
        os.replace(tmp, path)
        return out
