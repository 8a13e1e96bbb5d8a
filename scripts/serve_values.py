"""The serving section's numbers as report macros (rule: serve_values)."""
from dlperf.serve.values import serving_values
from dlperf.report.values import write_study_values

write_study_values(snakemake, "serve", serving_values)
