"""Weight averaging: the mean of a model's weights after each of its last N epochs.

With ``[train] average_epochs = N`` (N > 1, ``select = "last"``) a run keeps, instead of the last
epoch's weights, their mean over epochs ``epochs - N + 1 .. epochs`` (stochastic weight
averaging over the learning rate's tail: the weights of neighbouring epochs lie in one basin,
and their mean is a flatter point of it than any one of them). The sum is kept in float64 and
travels in the resume checkpoint, so an interrupted run resumes to the same mean.
"""

from __future__ import annotations

import torch


class WeightAverage:
    """The running mean of state dicts; tensors that are not floating point (none in
    :class:`kws.train.model.KeywordModel` today) are taken from the last state added."""

    def __init__(self, saved: dict | None = None) -> None:
        """Empty, or as :meth:`state` returned it."""
        self.sum: dict[str, torch.Tensor] = dict(saved["sum"]) if saved else {}
        self.count: int = int(saved["count"]) if saved else 0
        self.last: dict[str, torch.Tensor] = dict(saved["last"]) if saved else {}

    def add(self, weights: dict[str, torch.Tensor]) -> None:
        """Add one state dict (copied: training goes on changing the model's tensors)."""
        for name, value in weights.items():
            if value.is_floating_point():
                value = value.detach().to("cpu", torch.float64)
                self.sum[name] = self.sum[name] + value if name in self.sum else value.clone()
            else:
                self.last[name] = value.detach().to("cpu").clone()
        self.count += 1

    def mean(self, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The mean state dict, each tensor in the dtype and device of ``like``'s.

        Raises:
            ValueError: nothing was added, or ``like`` names a tensor that was not averaged.
        """
        if not self.count:
            raise ValueError("weight average: no epoch was added")
        missing = sorted(set(like) - set(self.sum) - set(self.last))
        if missing:
            raise ValueError(f"weight average: no average of {missing[:3]}")
        return {name: (self.sum[name] / self.count if name in self.sum else self.last[name])
                .to(value.device, value.dtype) for name, value in like.items()}

    def state(self) -> dict:
        """Plain data for a checkpoint (tensors, an int)."""
        return {"sum": self.sum, "count": self.count, "last": self.last}
