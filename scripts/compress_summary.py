"""Every compressed model and its references in one table, and size against accuracy (rule: compress_summary)."""
import pandas as pd

from dlperf.atomic import write_csv
from dlperf.compress.summary import size_accuracy_figure, summary_frame, summary_table
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    inp, p, out = snakemake.input, snakemake.params, snakemake.output
    latency = pd.read_csv(inp.latency)
    ssd = None
    if "ssd" in inp.keys():   # compress.quantize.ssd
        ssd = pd.read_csv(inp.ssd)
        latency = pd.concat([latency, pd.read_csv(inp.ssd_latency)], ignore_index=True)
    summary = summary_frame(arch=p.arch, pruning=pd.read_csv(inp.pruning), classifier=pd.read_csv(inp.classifier),
                            latency=latency, sharing=pd.read_csv(inp.sharing), distill=pd.read_csv(inp.distill),
                            ssd=ssd, deep=pd.read_csv(inp.deep), qat=pd.read_csv(inp.qat),
                            qat_latency=pd.read_csv(inp.qat_latency), temperature=p.temperature, alpha=p.alpha)
    write_csv(out.csv, summary)
    write_table(summary_table(summary), out.table)
    fidelity = of_job(snakemake)
    save_figure(size_accuracy_figure(summary), out.figure, fidelity)
    print(summary.to_string(index=False))
