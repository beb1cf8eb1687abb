"""The small torch network the learned estimators share (``reweight``'s classifier, ``lgso``'s
generator and critic)."""

from __future__ import annotations

import torch

__all__ = ["ConditionalMLP"]


class ConditionalMLP(torch.nn.Module):
    """y = MLP([x, t]): two hidden SiLU layers of ``hidden`` units, so that the output is smooth
    in the condition t (the design), which the estimators differentiate against; ``n_out`` = 1
    gives one number per row."""

    def __init__(self, n_x: int, n_t: int, hidden: int, n_out: int = 1) -> None:
        super().__init__()
        self.n_out = n_out
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_x + n_t, hidden), torch.nn.SiLU(),
            torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
            torch.nn.Linear(hidden, n_out),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        y = self.net(torch.cat([x, t], dim=1))
        return y.squeeze(1) if self.n_out == 1 else y
