"""Where a finished run's time went, per study, from Snakemake's benchmark files (benchmarks/<study>/<job>.tsv).

Each job's ``benchmark:`` file holds its wall seconds (``s``). Summed per study they say which study a run spends
its job-time on; the run's own wall time is shorter, as jobs run side by side on the cores given.

    python -m dlperf.report.benchmarks [benchmarks]     # a Markdown table, longest study first
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

COLUMNS = ["study", "jobs", "job_seconds", "longest_job", "longest_seconds"]


def job_seconds(root: str | Path) -> pd.DataFrame:
    """One row per benchmark file under ``root``: study (its folder), job (its name), seconds (wall)."""
    rows = [{"study": path.parent.name, "job": path.stem, "seconds": float(pd.read_csv(path, sep="\t")["s"].iloc[-1])}
            for path in sorted(Path(root).glob("*/*.tsv"))]
    return pd.DataFrame(rows, columns=["study", "job", "seconds"])


def study_seconds(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per study: its jobs, their summed wall seconds, and its longest job; the longest study first, then a row
    ``all``."""
    rows = []
    for study, df in jobs.groupby("study"):
        longest = df.loc[df.seconds.idxmax()]
        rows.append({"study": study, "jobs": len(df), "job_seconds": df.seconds.sum(), "longest_job": longest.job,
                     "longest_seconds": longest.seconds})
    table = pd.DataFrame(rows, columns=COLUMNS).sort_values("job_seconds", ascending=False, ignore_index=True)
    longest = jobs.loc[jobs.seconds.idxmax()] if len(jobs) else None
    table.loc[len(table)] = {"study": "all", "jobs": len(jobs), "job_seconds": jobs.seconds.sum(),
                             "longest_job": None if longest is None else f"{longest.study}/{longest.job}",
                             "longest_seconds": None if longest is None else longest.seconds}
    return table


def main(argv: list[str]) -> None:
    root = argv[0] if argv else "benchmarks"
    print(study_seconds(job_seconds(root)).to_markdown(index=False, floatfmt=".0f"))


if __name__ == "__main__":
    main(sys.argv[1:])
