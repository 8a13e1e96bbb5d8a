"""Every number the report quotes, as LaTeX macros, and the list of its study sections (rule: report_values).

Each reported study's values rule wrote its macros to results/<study>/values.json (input ``values``, in report
order); this gathers them, adds the shared ones made from all their provenance records, and writes values.tex.
"""
import json
from pathlib import Path

from dlperf.report.latex import write_macros, write_sections
from dlperf.report.values import gather_values
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    studies = [json.loads(Path(path).read_text()) for path in snakemake.input.values]
    macros = gather_values(studies, snakemake.params.scale)
    write_macros(snakemake.output.values, macros, source="rule report_values (scripts/report_values.py)")
    write_sections(snakemake.output.sections, snakemake.params.sections)
    print(f"{len(macros)} macros for studies {', '.join(s['study'] for s in studies)}")
