"""Plots and the HTML report of optimisation campaigns."""
