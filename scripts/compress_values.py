"""The compression section's numbers as report macros (rule: compress_values)."""
from dlperf.compress.values import compress_values
from dlperf.report.values import write_study_values

write_study_values(snakemake, "compress", compress_values)
