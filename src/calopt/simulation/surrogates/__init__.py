"""Fast simulation: the parametrised GFlash baseline (:mod:`.gflash`), the shower library as a
simulator (:mod:`.library`), generative surrogates trained on the cascade Monte Carlo (WGAN-GP,
normalising flow, AdaGAN ensembles: :mod:`.training`, :mod:`.simulator`), and the standard
evaluation of any fast simulation against the cascade (:mod:`.evaluation`)."""
