"""The registry of surrogate model types: a checkpoint's ``model_type`` names one of them.
Adding a model type is a module with a :class:`~calopt.simulation.surrogates.types.
SurrogateType` and one entry here."""

from __future__ import annotations

from calopt.errors import CaloptInputError
from calopt.simulation.surrogates.flow import FLOW
from calopt.simulation.surrogates.gan import ADAGAN, WGAN
from calopt.simulation.surrogates.types import SurrogateType

__all__ = ["MODEL_TYPES", "get_type"]

MODEL_TYPES: dict[str, SurrogateType] = {t.name: t for t in (WGAN, FLOW, ADAGAN)}


def get_type(name: str) -> SurrogateType:
    """The model type ``name``; an unknown one is a one-line :class:`CaloptInputError`."""
    if name not in MODEL_TYPES:
        hint = " (a VAE is not implemented; the likelihood model is 'flow')" if name == "vae" else ""
        raise CaloptInputError(f"unknown surrogate model {name!r}{hint}; expected one of {', '.join(MODEL_TYPES)}")
    return MODEL_TYPES[name]
