"""Learning curves of every Optimus run: one figure, one table (rule: optimus_learning_curves)."""
from pathlib import Path

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.report.figures import learning_curves
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    runs = {Path(p).parent.name: pd.read_csv(p) for p in snakemake.input.epochs}
    fidelity = of_job(snakemake)
    save_figure(learning_curves(runs), snakemake.output.figure, fidelity)
    final = pd.DataFrame([
        {"run": name, "epochs": int(df.epoch.iloc[-1]), "train_loss": df.train_loss.iloc[-1],
         "train_acc": df.train_acc.iloc[-1], "test_loss": df.test_loss.iloc[-1], "test_acc": df.test_acc.iloc[-1],
         "images_per_s": df.images_per_s.median(), "wall_seconds": df.wall_seconds.iloc[-1]}
        for name, df in sorted(runs.items())])
    write_csv(snakemake.output.csv, final)
    write_table(final, snakemake.output.table, formats={"train_loss": ".3f", "test_loss": ".3f", "train_acc": ".3f",
                                                        "test_acc": ".3f", "images_per_s": ".0f",
                                                        "wall_seconds": ".1f"})
