"""The SSD section's numbers as report macros (rule: ssd_values)."""
from dlperf.detection.values import ssd_values
from dlperf.report.values import write_study_values

write_study_values(snakemake, "ssd", ssd_values)
