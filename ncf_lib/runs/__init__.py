"""A training run on disk, as ``python -m ncf_lib train`` runs one: its settings and its
stages (:mod:`ncf_lib.runs.train`); each stage's locked checkpoint, log folder and what an
interruption kept (:mod:`ncf_lib.runs.stages`). Imports the core; the core never imports
this."""
