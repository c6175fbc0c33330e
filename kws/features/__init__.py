"""Features: audio -> frames the model reads. One definition each, used by training, export and
the runtime alike.

* :mod:`kws.features.logmel` - log-mel filterbank (numpy streaming + torch batch), the firmware's
  frontend;
* :mod:`kws.features.embedding` - a pretrained speech embedding every 80 ms.

:func:`features`, :func:`streaming_frontend` and :func:`features_torch` pick the implementation
for ``cfg.kind``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kws.core.config import FrontendConfig
from kws.features.logmel import StreamingFrontend, log_mel, log_mel_torch

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["features", "features_torch", "streaming_frontend"]


def features(wave: np.ndarray, cfg: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """Features of a whole clip for ``cfg.kind``: ``(n_frames, n_mels)`` float32 (log-mel, or
    speech embeddings every 80 ms, see :mod:`kws.features.embedding`)."""
    if cfg.kind == "log_mel":
        return log_mel(wave, cfg)
    from kws.features import embedding

    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n_samples,), got shape {wave.shape}")
    return embedding.embed(wave)


def streaming_frontend(cfg: FrontendConfig = FrontendConfig()):
    """The streaming twin of :func:`features`: a :class:`StreamingFrontend` or a
    :class:`kws.features.embedding.StreamingEmbedding`."""
    if cfg.kind == "log_mel":
        return StreamingFrontend(cfg)
    from kws.features.embedding import StreamingEmbedding

    return StreamingEmbedding()


def features_torch(waves: "torch.Tensor", cfg: FrontendConfig = FrontendConfig()) -> "torch.Tensor":
    """Batched :func:`features` for training, ``(batch, n_frames, n_mels)`` on the tensor's device
    (speech embeddings are computed by onnxruntime on the CPU)."""
    if cfg.kind == "log_mel":
        return log_mel_torch(waves, cfg)
    import torch

    from kws.features import embedding

    if waves.dim() != 2:
        raise ValueError(f"expected (batch, n_samples), got shape {tuple(waves.shape)}")
    return torch.from_numpy(embedding.embed(waves.float().cpu().numpy())).to(waves.device)
