"""Every number the report quotes, as LaTeX macros, and the list of its study sections (rule: report_values)."""
import json
from pathlib import Path

import pandas as pd

from dlperf.report import values
from dlperf.report.latex import write_macros, write_sections
from dlperf.workflow import script_logging


def load(path):
    """A CSV as a frame, a JSON file as a dict, a dataset directory as its provenance.json."""
    path = Path(path)
    if path.is_dir():
        path = path / "provenance.json"
    return pd.read_csv(path) if path.suffix == ".csv" else json.loads(path.read_text())


def study_inputs(study):
    """The rule's inputs named ``<study>__<argument>``, loaded: one file, or a list as {path: content}."""
    prefix = f"{study}__"
    return {name.removeprefix(prefix): load(files) if isinstance(files, str) else {f: load(f) for f in files}
            for name, files in snakemake.input.items() if name.startswith(prefix)}


with script_logging(snakemake.log[0]):
    p = snakemake.params
    groups = [values.provenance_values(map(load, snakemake.input.provenance), p.scale)]
    groups += [values.STUDIES[study](**study_inputs(study), **p.study_params[study]) for study in p.studies]
    macros = values.merge(*groups)
    write_macros(snakemake.output.values, macros, source="rule report_values (scripts/report_values.py)")
    write_sections(snakemake.output.sections, p.sections)
    print(f"{len(macros)} macros for studies {', '.join(p.studies)}")
