"""Fast simulation: the parametrised GFlash baseline, the shower library as a simulator, the
generative surrogates, and the standard evaluation of any fast simulation against the cascade."""
