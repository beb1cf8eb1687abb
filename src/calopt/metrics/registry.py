"""The metric registry: every figure of merit ``calopt evaluate`` measures, with its unit, the
direction in which it is better and how its error is computed. ``evaluate``, campaign
objectives, the report and the command line all read this one table: adding a metric is one
entry here (and the stage function of :mod:`calopt.pipeline` that measures it).

Every metric but the exact ones carries its statistical error as ``<name>_err``
(:attr:`Metric.error_key`), right after it in ``evaluate --json``; the error is None where the
metric is. Error methods (``Metric.error``):

* ``"exact"``: counted from the design, no statistical error (channels, cost);
* ``"fit"``: the uncertainty of the fit that measures the metric:

  - ``energy_resolution_*``: the parameter errors of the least-squares resolution fit
    (:func:`calopt.stats.fit_energy_resolution`, absolute point errors);
  - ``significance``: S and B of the spectrum fit, the covariance of the yields and the
    background propagated to S / sqrt(S + B) (:func:`calopt.metrics.fits.fit_mass_spectrum`).
    Where that fit or the B signal shape failed but truth-matched signal B candidates lie in
    the window, the significance is the truth-count s / sqrt(s + b) and its error that of
    independent Poisson counts s and b (:func:`calopt.metrics.mass.truth_count_significance`);
    ``significance_method`` says which (``"fit"`` or ``"truth_count"``), and the significance
    is None only without any signal candidate in the window;

* ``"bootstrap"``: the standard deviation of the metric over refits to the truth-matched
  candidates resampled with replacement (one per crossing at most: a bootstrap over crossings;
  30 resamples, seeded: deterministic). ``pi0_mass_width_mev``, ``b_mass_width_mev``: the
  sigma_eff of the double Crystal Ball (:func:`calopt.metrics.fits.sigma_eff_bootstrap`; why
  not the parameter covariance propagated is said there; against the spread of toy fits in
  tests/metrics/test_errors.py);
* ``"binomial"``: a fraction k / n of n crossings, each contributing at most one success:
  sqrt(p (1 - p) / n) (``pi0_efficiency``; :func:`calopt.stats.binomial_error`);
* ``"robust"``: a Gaussian-core width (:func:`calopt.stats.robust_sigma`) of n values:
  sigma / sqrt(2 (n - 1)) times the quantile estimate's efficiency factor
  (:func:`calopt.stats.robust_sigma_error`; ``position_resolution_mm``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from calopt.errors import CaloptInputError

__all__ = ["METRICS", "Metric", "format_value", "get_metric", "metric_names", "why_unmeasured"]

ErrorMethod = Literal["exact", "fit", "bootstrap", "binomial", "robust"]


@dataclass(frozen=True)
class Metric:
    """One figure of merit. ``name``: its key in ``evaluate --json``; ``unit`` (empty for a
    number without one); ``direction``: ``"min"`` or ``"max"`` (which way it is better);
    ``error``: how its error is computed (module docstring); ``kind``: ``"physics"`` or
    ``"cost"``; ``fit``: the key in ``fits`` of the fit whose failure leaves the metric
    unmeasured (None), if any; ``description``: one line for tables and help texts."""

    name: str
    unit: str
    direction: Literal["min", "max"]
    error: ErrorMethod
    kind: Literal["physics", "cost"]
    description: str
    fit: str | None = None

    @property
    def error_key(self) -> str | None:
        """The key of the metric's error in ``evaluate --json`` (None for an exact metric)."""
        return None if self.error == "exact" else f"{self.name}_err"

    @property
    def sign(self) -> float:
        """+1 for a metric that is better smaller, -1 for one that is better larger: ``sign *
        value`` is minimised."""
        return 1.0 if self.direction == "min" else -1.0

    def label(self) -> str:
        """``name [unit]``, for axes and tables."""
        return f"{self.name} [{self.unit}]" if self.unit else self.name


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("pi0_mass_width_mev", "MeV", "min", "bootstrap", "physics",
               "sigma_eff of the pi0 signal shape (truth-matched candidates)", fit="pi0"),
        Metric("pi0_efficiency", "", "max", "binomial", "physics",
               "truth-matched signal pi0s within +-30 MeV of the PDG mass, per crossing"),
        Metric("energy_resolution_stochastic", "sqrt(GeV)", "min", "fit", "physics",
               "a of sigma/E = a/sqrt(E) (+) b (+) c/E, single photons"),
        Metric("energy_resolution_constant", "", "min", "fit", "physics",
               "b of sigma/E = a/sqrt(E) (+) b (+) c/E, single photons"),
        Metric("energy_resolution_noise", "GeV", "min", "fit", "physics",
               "c of sigma/E = a/sqrt(E) (+) b (+) c/E, single photons"),
        Metric("position_resolution_mm", "mm", "min", "robust", "physics",
               "Gaussian-core width of the photon position residuals on the ECAL face"),
        Metric("b_mass_width_mev", "MeV", "min", "bootstrap", "physics",
               "sigma_eff of the B0 signal shape (truth-matched candidates)", fit="b"),
        Metric("significance", "", "max", "fit", "physics",
               "S / sqrt(S + B) of the B0 -> J/psi pi0 peak within +-2 sigma_eff (fit, else truth counts)",
               fit="b"),
        Metric("channels", "", "min", "exact", "cost", "readout channels of the design"),
        Metric("cost", "kCHF", "min", "exact", "cost", "modules, channels and timing of the design"),
    )
}  # fmt: skip


def metric_names(kind: str | None = None) -> tuple[str, ...]:
    """The registered metric names (of one ``kind`` when given), in the registry's order."""
    return tuple(name for name, m in METRICS.items() if kind is None or m.kind == kind)


def get_metric(name: str) -> Metric:
    """The metric called ``name``; an unknown name is a one-line :class:`CaloptInputError`."""
    try:
        return METRICS[name]
    except KeyError:
        raise CaloptInputError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}") from None


def why_unmeasured(m: Metric, doc: dict[str, Any]) -> str:
    """Why metric ``m`` is missing from the evaluation document ``doc``: the reason of the fit
    that failed, or "not measured"."""
    fit = doc.get("fits", {}).get(m.fit, {}) if m.fit else {}
    return f"failed: {fit['reason']}" if fit.get("reason") else "not measured"


def format_value(m: Metric, doc: dict[str, Any]) -> str:
    """Metric ``m`` of the evaluation document ``doc`` as text: its value with 4 significant
    digits and its error where it has one, the method where the document names one other than
    the fit (``<name>_method``: ``significance`` from truth counts), or why it is missing."""
    v = doc.get(m.name)
    if v is None:
        return why_unmeasured(m, doc)
    if m.error == "exact":
        return f"{v:.6g}"
    err = doc.get(m.error_key) if m.error_key else None
    method = doc.get(f"{m.name}_method")
    return (f"{v:.4g}" + (f" +- {err:.2g}" if err is not None else "")
            + (f" ({method.replace('_', ' ')})" if method not in (None, "fit") else ""))  # fmt: skip
