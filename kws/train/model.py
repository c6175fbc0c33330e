"""The keyword model: frame stacking -> linear projection -> one GRU layer -> classes.

Shapes (B batch, T feature frames of 10 ms, S = ``stack_frames``, K keywords):

    features (B, T, n_mels), T a multiple of S
      -> normalize with the training mean/std (fixed buffers, streaming-safe)
      -> stack S frames: (B, T/S, S*n_mels)            one step = S * 10 ms
      -> Linear + ReLU: (B, T/S, proj_dim)             a strided convolution over S frames
      -> GRU: (B, T/S, hidden), state (1, B, hidden)
      -> Linear: logits (B, T/S, K + 1 + A)             class 0 is "none"; A auxiliary keywords
                                                       (``cfg.auxiliary``) after the K

With ``members`` N > 1 (a merged ensemble) the GRU is N GRUs side by side: GRU i reads
projections ``i*P/N .. (i+1)*P/N`` and owns state units ``i*H/N .. (i+1)*H/N``; no weight joins
two members, and none is stored.

State is explicit: ``forward(features, state) -> (logits, state)``; feeding a sequence in pieces
with the returned state equals feeding it at once. ``scores`` are the softmax probabilities of the
K keywords (class 0 and the auxiliary classes dropped), which is what the exported ONNX graph
outputs.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from kws.core.config import FrontendConfig, ModelConfig
from kws.features import features_torch


class KeywordModel(nn.Module):
    """Streaming GRU keyword model; see the module docstring for shapes."""

    def __init__(self, cfg: ModelConfig, frontend: FrontendConfig = FrontendConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_mels = frontend.n_mels
        self.register_buffer("feat_mean", torch.zeros(frontend.n_mels))
        self.register_buffer("feat_std", torch.ones(frontend.n_mels))
        self.proj = nn.Linear(cfg.stack_frames * frontend.n_mels, cfg.proj_dim)
        n = cfg.members
        self.grus = nn.ModuleList(nn.GRU(cfg.proj_dim // n, cfg.hidden // n, batch_first=True)
                                  for _ in range(n))
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden, len(cfg.keywords) + len(cfg.auxiliary) + 1)

    @property
    def step_frames(self) -> int:
        """Feature frames per model step."""
        return self.cfg.stack_frames

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        """Zero GRU state, ``(1, batch, hidden)``."""
        return torch.zeros(1, batch, self.cfg.hidden, device=self.out.weight.device)

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the per-band feature mean and standard deviation of the training data."""
        self.feat_mean.copy_(mean)
        self.feat_std.copy_(torch.clamp(std, min=1e-3))

    def forward(self, features: torch.Tensor, state: Optional[torch.Tensor] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, n_mels)`` features -> ``(B, T / S, K + 1 + A)`` logits and the new state."""
        batch, frames, mels = features.shape
        if mels != self.n_mels or frames % self.step_frames:
            raise ValueError(f"features of shape {tuple(features.shape)}: expected (batch, T, "
                             f"{self.n_mels}) with T a multiple of {self.step_frames}")
        if state is None:
            state = self.initial_state(batch)
        x = (features - self.feat_mean) / self.feat_std
        x = x.reshape(batch, frames // self.step_frames, self.step_frames * mels)
        x = torch.relu(self.proj(x))
        n = self.cfg.members
        pieces = [gru(xi, si) for gru, xi, si in zip(self.grus, x.chunk(n, dim=-1),
                                                        state.chunk(n, dim=-1))]
        x = torch.cat([y for y, _ in pieces], dim=-1)
        state = torch.cat([s for _, s in pieces], dim=-1)
        return self.out(self.drop(x)), state

    def scores(self, features: torch.Tensor, state: Optional[torch.Tensor] = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keyword probabilities ``(B, T / S, K)`` in [0, 1] and the new state."""
        logits, state = self(features, state)
        return self.folded(torch.softmax(logits, dim=-1))[..., 1:], state

    def folded(self, probs: torch.Tensor) -> torch.Tensor:
        """``(..., K + 1 + A)`` class probabilities -> ``(..., K + 1)``: the auxiliary classes'
        probability joins "none" (class 0)."""
        k = len(self.cfg.keywords)
        return torch.cat([probs[..., :1] + probs[..., 1 + k:].sum(-1, keepdim=True),
                          probs[..., 1:1 + k]], dim=-1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs_per_second(cfg: ModelConfig, frontend: FrontendConfig = FrontendConfig()) -> int:
    """Multiply-accumulates of the model per second of audio (frontend excluded)."""
    step_s = cfg.stack_frames * frontend.hop_ms / 1000
    n, p, h = cfg.members, cfg.proj_dim // cfg.members, cfg.hidden // cfg.members
    per_step = (cfg.stack_frames * frontend.n_mels * cfg.proj_dim
                + n * 3 * h * (p + h)
                + cfg.hidden * (len(cfg.keywords) + len(cfg.auxiliary) + 1))
    return int(round(per_step / step_s))


def crop_to_steps(features: torch.Tensor, step_frames: int) -> torch.Tensor:
    """Drop trailing frames so ``(B, T, F)`` has a whole number of model steps."""
    usable = features.shape[1] - features.shape[1] % step_frames
    return features[:, :usable]


def torch_scorer(model: KeywordModel, cfg, device: str = "cpu", cache: dict | None = None):
    """A :data:`kws.metrics.evaluate.Scorer` running the torch model over a whole recording at
    once (equal to streaming it: the model is causal and the state starts at zero); ``cfg`` is
    the run's :class:`kws.core.config.Config`. ``cache`` keeps each recording's features by
    ``id(wave)`` (on any device: they are moved to ``device``), for recordings that stay alive
    and are scored again (validation, every epoch)."""
    def score(wave: np.ndarray) -> np.ndarray:
        feats = None if cache is None else cache.get(id(wave))
        if feats is None:
            feats = features_torch(torch.from_numpy(np.ascontiguousarray(wave))[None].to(device),
                                   cfg.frontend)
            if cache is not None:
                cache[id(wave)] = feats
        feats = crop_to_steps(feats.to(device), model.step_frames)
        if feats.shape[1] == 0:  # shorter than one step (the speech embedding reads 0.78 s)
            return np.zeros((0, len(cfg.model.keywords)), dtype=np.float32)
        with torch.no_grad():
            scores, _ = model.scores(feats)
        return scores[0].float().cpu().numpy()
    return score
