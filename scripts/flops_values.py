"""The FLOPs/PALEO section's numbers as report macros (rule: flops_values)."""
from dlperf.flops.values import flops_values
from dlperf.report.values import write_study_values

write_study_values(snakemake, "flops", flops_values)
