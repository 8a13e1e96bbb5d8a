"""Where a finished run's time went, per study, from Snakemake's benchmark files (benchmarks/<study>/<job>.tsv).

Each job's ``benchmark:`` file holds its wall seconds (``s``). Summed per study they say which study a run spends
its job-time on; the run's own wall time is shorter, as jobs run side by side on the cores given.

    python -m dlperf.report.benchmarks [benchmarks]     # a Markdown table, longest study first

Snakemake's own log (``.snakemake/log/*.snakemake.log``) says when each job ran: :func:`job_intervals` reads it,
and :func:`overlaps` lists the jobs that ran beside a given rule's (a timing job must have had none).
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
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


_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_STARTED = re.compile(r"^(?:local)?rule (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


@dataclass(frozen=True)
class JobInterval:
    rule: str
    jobid: int
    start: datetime
    end: datetime
    wildcards: dict = field(default_factory=dict, compare=False)

    def overlaps(self, other: "JobInterval") -> bool:
        """Both ran at once. The log's stamps are whole seconds, so a job that started in the second another ended
        did not overlap it."""
        return self.jobid != other.jobid and self.start < other.end and other.start < self.end


def job_intervals(log: str | Path) -> list[JobInterval]:
    """Every job that finished in one Snakemake log, with the stamps Snakemake printed when it started and ended."""
    stamp, rule, started, intervals, last = None, None, {}, [], None
    for line in Path(log).read_text().splitlines():
        if m := _STAMP.match(line):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := _STARTED.match(line):
            rule = m.group(1)
        elif (m := _JOBID.match(line)) and rule is not None:
            last = int(m.group(1))
            started[last] = (rule, stamp, {})
            rule = None
        elif (m := _WILDCARDS.match(line)) and last in started:
            started[last][2].update(part.split("=", 1) for part in m.group(1).split(", "))
        elif (m := _FINISHED.match(line)) and int(m.group(1)) in started:
            name, start, wildcards = started.pop(int(m.group(1)))
            intervals.append(JobInterval(name, int(m.group(1)), start, stamp, wildcards))
    return intervals


def overlaps(intervals: list[JobInterval], rules) -> list[tuple[JobInterval, JobInterval]]:
    """(job of one of ``rules``, a job that ran beside it), for every such pair."""
    return [(job, other) for job in intervals if job.rule in rules for other in intervals if job.overlaps(other)]


def main(argv: list[str]) -> None:
    root = argv[0] if argv else "benchmarks"
    print(study_seconds(job_seconds(root)).to_markdown(index=False, floatfmt=".0f"))


if __name__ == "__main__":
    main(sys.argv[1:])
