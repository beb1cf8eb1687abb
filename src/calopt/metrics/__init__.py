"""Stage 5 of the cycle: resolutions, mass widths, significance and cost."""

from calopt.metrics.fits import MassFit, fit_energy_resolution, fit_mass_peak, robust_sigma

__all__ = ["MassFit", "fit_energy_resolution", "fit_mass_peak", "robust_sigma"]
