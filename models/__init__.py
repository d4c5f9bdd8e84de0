"""Network definitions in one registry: a name maps to a builder.

    model = models.build("plain_cnn", num_classes=2, width=16, dropout=0.2)

A selectbox lists `models.names()`, and one test runs over every registered model (output shape,
the gradient reaches the input, reproducible initialisation). Builders take keyword arguments
with defaults, so every model can be built from its name alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

REGISTRY: dict[str, ModelSpec] = {}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    family: str  # "classifier", "segmenter", "detector", "generative"
    title: dict  # {en, zh}
    description: dict  # one sentence each: what the design is and what it fixed
    defaults: dict = field(default_factory=dict)


def register(name: str, *, family: str, title: dict, description: dict, **defaults):
    """Decorator: add a builder to the registry under `name`."""

    def wrap(builder):
        if name in REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        REGISTRY[name] = ModelSpec(name, builder, family, title, description, defaults)
        return builder

    return wrap


def names(family: str | None = None) -> list[str]:
    _load_all()
    return [n for n, spec in REGISTRY.items() if family is None or spec.family == family]


def spec(name: str) -> ModelSpec:
    _load_all()
    return REGISTRY[name]


def build(name: str, *, seed: int | None = None, **kwargs) -> nn.Module:
    """Build a registered model; with `seed`, initialise its weights from a local generator so
    the same seed gives the same weights whatever else the process is doing."""
    model = spec(name).builder(**{**spec(name).defaults, **kwargs})
    if seed is not None:
        init_weights(model, torch.Generator().manual_seed(seed))
    return model


def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """He (Kaiming) initialisation for conv and linear layers, from `generator`.

    Same rule as PyTorch's default for ReLU networks, but reproducible without touching the
    global random state (which other users' training threads share)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.kaiming_uniform_(module.weight, nonlinearity="relu", generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) and module.weight is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


def set_generator(model: nn.Module, generator: torch.Generator | None) -> None:
    """Give every seeded dropout layer the trainer's generator (None: the global one)."""
    for module in model.modules():
        if isinstance(module, SeededDropout):
            module.generator = generator


class SeededDropout(nn.Module):
    """Dropout whose mask comes from a generator the trainer owns.

    nn.Dropout draws from the process-wide random state, which concurrent training jobs share;
    with its own generator a run is bit-for-bit reproducible from its seed."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError("dropout probability must be in [0, 1)")
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _load_all() -> None:
    # Importing the modules runs their @register decorators.
    from models import blocks, classifiers, detection, generative, segmentation  # noqa: F401
