"""Beyond the paper: baselines, corrected sampled metrics, and `reproduce`'s grid, runner and
report (with the published numbers they are compared with). Imports the core; the core never
imports this."""
