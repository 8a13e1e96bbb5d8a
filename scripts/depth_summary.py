"""The coursework's Table 1 and the loss/accuracy curves of every variant (rule: depth_summary)."""
import json
from pathlib import Path

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.report.figures import learning_curves
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    rows, curves = [], {}
    for metrics_path, epochs_path, prov_path in zip(snakemake.input.metrics, snakemake.input.epochs,
                                                    snakemake.input.provenance):
        m = json.loads(Path(metrics_path).read_text())
        prov = json.loads(Path(prov_path).read_text())
        run = prov["config"]["depth"]["run"]
        epochs = pd.read_csv(epochs_path)
        best = epochs[epochs.epoch == m["best_epoch"]].iloc[0]
        rows.append({"model": run["model"], "lr": run["lr"], "params": prov["params"],
                     "train_loss": best.train_loss, "train_acc": 100 * best.train_acc,
                     "val_loss": m["best_val_loss"], "val_acc": 100 * m["best_val_acc"],
                     "test_loss": m["best_test_loss"], "test_acc": 100 * m["best_test_acc"],
                     "best_epoch": m["best_epoch"]})
        curves[f"{run['model']} lr={run['lr']:g}"] = epochs
    table = pd.DataFrame(rows)
    write_csv(snakemake.output.csv, table)
    write_table(table.assign(lr=table.lr.map(lambda v: f"{v:.0e}")), snakemake.output.table,
                formats={c: ".2f" for c in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
                                            "test_acc")})
    fidelity = of_job(snakemake)
    save_figure(learning_curves(curves, splits=("train", "val")), snakemake.output.figure, fidelity)
    print(table.to_string(index=False))
