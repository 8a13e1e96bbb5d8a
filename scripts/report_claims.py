"""The claims ledger checked against the results (rule: report_claims): results/report/claims.csv, the
scorecard's table and its counts as report macros; with claims_strict, a failed claim fails the build."""
import math

import pandas as pd

from dlperf.atomic import write_csv, write_json
from dlperf.report.claims import FAIL, check_claims, failures, scorecard_values
from dlperf.report.tables import write_table
from dlperf.report.values import study_values
from dlperf.workflow import script_logging


def number(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.6g}"


with script_logging(snakemake.log[0]):
    p, out = snakemake.params, snakemake.output
    frames = {path: pd.read_csv(path) for path in snakemake.input.results}
    table = check_claims(p.claims, p.settings, p.studies, frames)
    write_csv(out.csv, table)
    shown = table[["claim", "published", "regenerated", "tolerance", "status"]].assign(
        published=table.published.map(number), regenerated=table.regenerated.map(number))
    write_table(shown, out.table, bold_rows=set(map(int, (table.status == FAIL).to_numpy().nonzero()[0])))
    write_json(out.values, study_values("claims", scorecard_values(table), []))
    print(table.drop(columns=["source", "protocol"]).to_string(index=False))
    if p.strict and (table.status == FAIL).any():
        raise SystemExit(f"claims_strict: {int((table.status == FAIL).sum())} claim(s) of config/claims.yaml "
                         f"failed:\n{failures(table)}")
