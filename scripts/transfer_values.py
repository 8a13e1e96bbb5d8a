"""The transfer section's numbers as report macros (rule: transfer_values)."""
from dlperf.transfer.values import transfer_values
from dlperf.report.values import write_study_values

write_study_values(snakemake, "transfer", transfer_values)
