"""Generative fast simulation: neural surrogates trained on the cascade Monte Carlo
(WGAN-GP, normalising flow, AdaGAN ensembles) and other fast backends.

This package is shared: other modules (e.g. gflash, library, evaluation) are added by their
own authors. Import what you need from the modules themselves; this file stays minimal.
"""
