"""calopt: machine-learning-assisted, end-to-end optimisation of calorimeter design."""

__version__ = "0.1.0"

__all__ = ["__version__"]
