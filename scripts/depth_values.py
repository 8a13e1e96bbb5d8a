"""The depth section's numbers as report macros (rule: depth_values)."""
from dlperf.depth.values import depth_values
from dlperf.report.values import write_study_values

write_study_values(snakemake, "depth", depth_values)
