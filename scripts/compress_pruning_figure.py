"""Accuracy and latency against sparsity, from compress_pruning's CSV (rule: compress_pruning_figure)."""
import pandas as pd

from dlperf.compress.summary import accuracy_sparsity_figure
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    # the pruned runs' records and the timing job's: the device and commit of what the figure plots
    save_figure(accuracy_sparsity_figure(pd.read_csv(snakemake.input.csv)), snakemake.output.figure,
                of_job(snakemake))
