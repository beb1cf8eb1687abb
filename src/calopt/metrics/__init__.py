"""Stage 5 of the cycle: mass-peak fits, the pi0 and B metrics, and the metric registry."""

from calopt.metrics.fits import (
    MassFit,
    ShapeFit,
    SpectrumFit,
    fit_mass_peak,
    fit_mass_spectrum,
    fit_signal_shape,
)

__all__ = [
    "MassFit",
    "ShapeFit",
    "SpectrumFit",
    "fit_mass_peak",
    "fit_mass_spectrum",
    "fit_signal_shape",
]
