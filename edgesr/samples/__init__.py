"""Where a data-free run's inputs come from: procedural priors (:mod:`.priors`, NumPy) and the
training pool built from them (:mod:`.pool`, torch). The learned DFSR generators, the other
source, live with the method that trains them (:mod:`edgesr.distill.generator`)."""
