"""One wrapper for every frozen prior network: eval mode, no parameter grads, declared input convention."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class InputConvention:
    """What a prior network expects as input.

    value_range: (low, high) of the floats the wrapped network's ``forward`` takes.
    channel_order: "RGB" or "BGR" (what the caller must pass, after any conversion the wrapper does not do).
    """

    value_range: tuple[float, float]
    channel_order: str

    def describe(self) -> str:
        lo, hi = self.value_range
        return f"{self.channel_order} in [{lo:g}, {hi:g}]"


class FrozenPrior(nn.Module):
    """A pretrained network used as a fixed function.

    The wrapped network is put in eval mode and its parameters stop requiring grad; ``train()`` on the
    wrapper (or on anything holding it) cannot switch it back to training mode, so dropout and batch
    norm stay deterministic. Gradients still flow *through* it to its inputs.

    Frozen priors are never registered in an optimiser, never wrapped by DistributedDataParallel and
    never written into training checkpoints: the loss object that holds them keeps them outside the
    trained modules (their weights come from the weight cache, see ``facesketch.priors.weights``).
    """

    def __init__(self, net: nn.Module, *, name: str, convention: InputConvention, weights_source: str):
        super().__init__()
        self.net = net
        self.name = name
        self.convention = convention
        self.weights_source = weights_source
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "FrozenPrior":  # noqa: D102 - always eval
        super().train(False)
        return self

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, input={self.convention.describe()}, weights={self.weights_source!r}, frozen"
