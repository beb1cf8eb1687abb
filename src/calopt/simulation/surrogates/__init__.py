"""Generative surrogates trained on the cascade Monte Carlo, and the quality of any fast
simulation against the cascade.

* :mod:`.registry`: the model types (``wgan``, ``flow``, ``adagan``), each a
  :class:`~.types.SurrogateType` (build, train, load, sample) in a module of its own
  (:mod:`.gan`, :mod:`.flow`);
* :mod:`.dataset`, :mod:`.conditions`: the showers as training data, the conditions and their
  training range;
* :mod:`.training`, :mod:`.resume`: resumable, reproducible training and the post-training
  calibrations (:mod:`.calibration`, :mod:`.hits`);
* :mod:`.checkpoint`: the ``calopt-surrogate`` file format;
* :mod:`.simulator`: a checkpoint as a :class:`~calopt.simulation.base.ShowerSimulator`, with
  per-shower random numbers (:mod:`.noise`);
* :mod:`.quality`: ``calopt surrogate evaluate``, a fast simulation against the cascade.
"""
