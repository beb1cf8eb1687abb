"""The small torch network the learned estimators share (``reweight``'s classifier, ``lgso``'s
generator and critic, the design-conditioned reconstruction) and the seeded, one-thread context
they are trained in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["ConditionalMLP", "one_thread", "seeded_torch"]


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


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """torch's global generator at ``seed`` inside, restored after (the estimators' networks draw
    their initial weights from it); one thread inside, as small networks run fastest on one and the
    machine is shared."""
    with torch.random.fork_rng(devices=[]), one_thread():
        torch.manual_seed(int(seed) % (2**63))
        yield


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread inside (restored after): small networks run fastest on one, and
    several threads on a shared machine slow them down tenfold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
