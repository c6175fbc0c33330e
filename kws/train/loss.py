"""The training loss.

Loss (why): keyword ends found by an energy endpoint are off by ~0.1 s and a model that is told to
fire on every keyword frame fires early and often. So we use max-pooling (Sun et al., 2016)
localized at the keyword end, plus hard-negative max-pooling:

* positive term: in a window ``[end - 0.3 s, end + 0.3 s]`` only the step where the keyword's
  log-probability is highest gets cross-entropy towards the keyword. With a decision rule that
  averages ``smoothing`` steps (:mod:`kws.core.decision`), it is the average the rule compares,
  so a keyword raises its score for that many steps in a row: a one-step spike, which the
  average would cut to a fraction, no longer satisfies it;
* negative term: every step outside ``[keyword start, end + 0.3 s]`` gets cross-entropy towards
  "none" (mean over steps), so the model stays quiet on speech and on partial keywords;
* hard-negative term: per sequence, the non-keyword step with the highest keyword probability
  gets cross-entropy towards "none" again, which pushes down the rare peaks that become false
  alarms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def keyword_loss(logits: torch.Tensor, labels: torch.Tensor, start_step: torch.Tensor,
                 end_step: torch.Tensor, before: int, after: int, smoothing: int = 1
                 ) -> torch.Tensor:
    """The loss in the module docstring.

    Args:
        logits: ``(B, steps, K + 1)``.
        labels: ``(B,)`` 0 = none, else 1 + keyword index.
        start_step, end_step: ``(B,)`` keyword bounds in steps (ignored where label is 0).
        before, after: the positive window around ``end_step``, in steps.
        smoothing: steps the decision rule averages (1: none).
    """
    logp = F.log_softmax(logits.float(), dim=-1)
    steps = torch.arange(logits.shape[1], device=logits.device)[None, :]
    positive = (labels > 0)[:, None]
    keyword_zone = positive & (steps >= start_step[:, None]) & (steps <= end_step[:, None] + after)
    none_lp = logp[..., 0]
    background = ~keyword_zone
    loss = -(none_lp * background).sum() / background.sum().clamp(min=1)
    hard = (-none_lp).masked_fill(keyword_zone, float("-inf")).max(dim=1).values
    loss = loss + hard[torch.isfinite(hard)].mean()
    if positive.any():
        kw_lp = logp.gather(-1, labels[:, None, None].expand(-1, logp.shape[1], 1)).squeeze(-1)
        if smoothing > 1:  # the rule's moving average, zeros before the sequence starts
            padded = F.pad(kw_lp.exp(), (smoothing - 1, 0))
            kw_lp = padded.unfold(1, smoothing, 1).mean(-1).clamp_min(1e-12).log()
        window = positive & (steps >= end_step[:, None] - before) & \
            (steps <= end_step[:, None] + after)
        best = kw_lp.masked_fill(~window, float("-inf")).max(dim=1).values
        loss = loss - best[labels > 0].mean()
    return loss
