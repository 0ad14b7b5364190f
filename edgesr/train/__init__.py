"""The training layer every trainer stands on (torch; knows nothing of any one method).

* :mod:`.recipe`: the run-level recipe keys (seed, device, precision, intervals, budget, NaN
  patience, validation and evaluation), validated once for every trainer;
* :mod:`.optim`: optimiser settings, their builder and the learning-rate schedules;
* :mod:`.trainer`: :class:`Trainer`, what a method provides to the loop;
* :mod:`.loop`: :func:`fit`, the one loop: step, log, validate, checkpoint, budget, signals,
  NaN streak;
* :mod:`.checkpoint`: atomic, finite-only checkpoints read without unpickling code, RNG state;
* :mod:`.run_folder`: ``runs/<command>/<name>/`` and its metrics log;
* :mod:`.command`: what ``edgesr distill`` and ``edgesr teacher train`` share around the loop
  (device, new-or-resume, progress bar, plot, end-of-run evaluation and results).

A method (``distill/``, ``teacher/``) subclasses :class:`Trainer` with its networks, its step
and its state; nothing here imports a method.
"""
