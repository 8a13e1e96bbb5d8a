"""Fit l(k) = 1/(β0·k + β1) + β2 to every Optimus run (rule: optimus_loss_fits)."""
from pathlib import Path

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.optimus import figures
from dlperf.optimus.study import binned_loss, fit_runs
from dlperf.provenance import Provenance
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    fit_cfg = snakemake.params.fit
    prov = Provenance({"optimus": {"fit": fit_cfg}}, derived=True)
    steps = {Path(p).parent.name: pd.read_csv(p) for p in snakemake.input.steps}
    fits = fit_runs(steps, fit_cfg["bins_per_epoch"], fit_cfg["weighting"])
    write_csv(snakemake.output.csv, fits)
    for row in fits.itertuples():
        print(f"{row.arch}-{row.device}-s{row.seed}: {row.status} beta=({row.beta0:.4g}, {row.beta1:.4g}, "
              f"{row.beta2:.4g}) r2={row.r2:.4f} {row.message}")
    points = {name: binned_loss(df, fit_cfg["bins_per_epoch"]) for name, df in steps.items()}
    fidelity = of_job(snakemake)
    save_figure(figures.loss_fits(points, fits), snakemake.output.figure, fidelity)
    shown = fits[["arch", "device", "seed", "beta0", "beta1", "beta2", "rmse", "r2", "status"]]
    write_table(shown, snakemake.output.table, formats={b: ".4g" for b in ("beta0", "beta1", "beta2")}
                | {"rmse": ".4f", "r2": ".4f"})
    prov.write(Path(snakemake.output.csv).with_name("loss_fits.provenance.json"),
               fit="l(k) = 1/(beta0*k + beta1) + beta2, k in epochs, losses averaged over 1/bins_per_epoch epoch")
