"""The Optimus section's numbers as report macros (rule: optimus_values)."""
from dlperf.optimus.values import optimus_values
from dlperf.report.values import write_study_values

write_study_values(snakemake, "optimus", optimus_values)
