"""Regress β on depth and device, predict the target model's curve, compare with its real run
(rule: optimus_prediction)."""
from pathlib import Path

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.optimus import figures
from dlperf.optimus.study import accuracy_map, parse_run, predict_target, regress_betas
from dlperf.provenance import Provenance
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p = snakemake.params
    prov = Provenance({"optimus": {"target_arch": p.target_arch, "target_accuracy": p.target_accuracy,
                                   "regression_form": p.form, "fit": {"bins_per_epoch": p.bins_per_epoch}}},
                      derived=True)   # a fit: computed from the runs' results, not measured
    fits = pd.read_csv(snakemake.input.fits)
    fits = fits[fits.arch != p.target_arch]
    models, table = regress_betas(fits, p.form)
    write_csv(snakemake.output.regression, table)

    def by_run(paths):
        return {Path(x).parent.name: pd.read_csv(x) for x in paths}

    acc_map = accuracy_map(by_run(snakemake.input.train_epochs))
    curves, errors = predict_target(models, p.target_arch, by_run(snakemake.input.target_steps),
                                    by_run(snakemake.input.target_epochs), acc_map, p.target_accuracy,
                                    p.bins_per_epoch, p.max_epochs)
    write_csv(snakemake.output.prediction, curves[["device", "epoch", "predicted_loss", "measured_loss"]])
    write_csv(snakemake.output.error,
              errors[["device", "mape_percent", "predicted_epochs_to_target", "measured_epochs_to_target"]])
    fidelity = of_job(snakemake)
    for figure_path in snakemake.output.figures:
        device = Path(figure_path).stem.rsplit("_", 1)[1]
        save_figure(figures.prediction(curves[curves.device == device], p.target_arch, device), figure_path,
                    fidelity)
    write_table(errors[["device", "beta0", "beta1", "beta2", "mape_percent", "predicted_epochs_to_target",
                        "measured_epochs_to_target"]], snakemake.output.table,
                formats={"beta0": ".4g", "beta1": ".4g", "beta2": ".4g", "mape_percent": ".1f",
                         "predicted_epochs_to_target": ".2f"})
    prov.write(Path(snakemake.output.error).with_name("prediction.provenance.json"),
               regression=table.to_dict("records"), loss_to_accuracy="isotonic (non-increasing) regression of "
               "per-epoch test accuracy on per-epoch mean training loss, pooled over the regression runs",
               devices=[parse_run(Path(x).parent.name)["device"] for x in snakemake.input.target_steps])
