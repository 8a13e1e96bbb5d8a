"""Compile report/report.tex with latexmk and refuse a PDF with undefined references or missing files
(rule: report_pdf)."""
import os
import shutil
import subprocess
from pathlib import Path

from dlperf.atomic import atomic_write
from dlperf.report.latex import log_problems
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    build = Path(snakemake.params.build_dir)
    main = Path(snakemake.input.main)
    # LaTeX runs in the working directory, where results/ is; TEXINPUTS adds the repository, where report/*.tex are
    # (the same directory unless snakemake ran with --directory). max_print_line stops TeX from wrapping the log at
    # 79 columns, which would split long file names and hide them from the checks below. -g: Snakemake runs this job
    # only when an input changed, so latexmk must not second-guess it from the state a previous (possibly failed)
    # build left in the build directory.
    sources = Path(snakemake.input.preamble).resolve().parents[1]  # the repository: report/preamble.tex is in it
    env = os.environ | {"max_print_line": "10000", "TEXINPUTS": f".:{sources}:"}
    command = ["latexmk", "-pdf", "-g", "-recorder", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
               f"-outdir={build}", f"-jobname={main.stem}", str(main)]
    print(" ".join(command), flush=True)
    run = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(run.stdout, flush=True)
    log = build / f"{main.stem}.log"
    if run.returncode != 0:
        raise RuntimeError(f"latexmk failed (exit {run.returncode}); see {log}")
    problems = log_problems(log.read_text(errors="replace"))
    if problems:
        raise RuntimeError(f"{log} reports {len(problems)} problem(s):\n" + "\n".join(problems))
    with atomic_write(snakemake.output.pdf, "wb") as fh, open(build / f"{main.stem}.pdf", "rb") as pdf:
        shutil.copyfileobj(pdf, fh)
