"""Each figure's fidelity (scale, device, commit), read from the metadata the figure carries, as the lines the
report prints under the figures' captions (rule: report_figures)."""
from dlperf.atomic import atomic_write
from dlperf.report import fidelity
from dlperf.report.latex import render_fidelities
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    lines = {path: fidelity.read(path) for path in snakemake.input.figures}
    with atomic_write(snakemake.output.fidelity) as fh:
        fh.write(render_fidelities(lines))
    for path, text in lines.items():
        print(f"{path}: {text}")
