"""Stage 5 of the cycle: resolutions, mass widths, significance and cost."""

from calopt.metrics.fits import (
    MassFit,
    ShapeFit,
    SpectrumFit,
    fit_energy_resolution,
    fit_mass_peak,
    fit_mass_spectrum,
    fit_signal_shape,
    robust_sigma,
)

__all__ = [
    "MassFit",
    "ShapeFit",
    "SpectrumFit",
    "fit_energy_resolution",
    "fit_mass_peak",
    "fit_mass_spectrum",
    "fit_signal_shape",
    "robust_sigma",
]
