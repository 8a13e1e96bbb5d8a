"""Time to the target accuracy against workers with the synchronous speed model (rule: optimus_time_to_accuracy)."""
import json
import math

import pandas as pd

from dlperf.atomic import write_csv, write_json
from dlperf.models.cifar_resnet import cifar_model
from dlperf.optimus import figures
from dlperf.optimus.speed_model import derive_theta, optimal_workers, steps_needed, time_to_accuracy
from dlperf.provenance import Provenance
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p = snakemake.params
    cfg = p.speed
    prov = Provenance({"optimus": {"speed_model": cfg, "target_arch": p.target_arch}}, derived=True)
    errors = pd.read_csv(snakemake.input.error)
    row = errors[errors.device == cfg["device"]].iloc[0]
    epochs = float(row.predicted_epochs_to_target)
    if cfg.get("theta"):
        theta = dict(cfg["theta"])
    else:
        measured = pd.read_csv(snakemake.input.target_epochs)
        images_per_s = float(measured.images_per_s.median())
        n_params = sum(t.numel() for t in cifar_model(p.target_arch, width=p.width).parameters())
        theta = derive_theta(seconds_per_sample=1.0 / images_per_s, model_bytes=4.0 * n_params,
                             bandwidth_bytes_per_s=cfg["bandwidth_gbit_s"] * 1e9 / 8,
                             step_overhead_s=cfg["step_overhead_s"], per_worker_overhead_s=cfg["per_worker_overhead_s"],
                             per_ps_overhead_s=cfg["per_ps_overhead_s"])
        theta["provenance"] += (f"; seconds_per_sample measured as 1/median images/s ({images_per_s:.1f}) of "
                                f"{p.target_arch} on device label {cfg['device']}; model_bytes = 4 x {n_params} fp32 "
                                f"parameters")
    steps = steps_needed(epochs, p.n_train, cfg["global_batch"])
    workers = range(cfg["workers"]["min"], cfg["workers"]["max"] + 1)
    tta = time_to_accuracy(cfg["ps"], workers, theta, cfg["global_batch"], steps)
    write_csv(snakemake.output.csv, tta)
    optimum = {int(ps): {"closed_form_w_star": optimal_workers(ps, theta, cfg["global_batch"]),
                         "best_w_on_grid": int(df.loc[df.hours_to_target.idxmin()].workers)
                         if math.isfinite(steps) else None}
               for ps, df in tta.groupby("ps")}
    write_json(snakemake.output.theta, {"theta": theta, "predicted_epochs_to_target": epochs,
                                        "steps_needed": steps, "optimum": optimum})
    fidelity = of_job(snakemake)
    save_figure(figures.time_to_accuracy(tta, theta, cfg["global_batch"], p.target_accuracy),
                snakemake.output.figure, fidelity)
    prov.write(snakemake.output.provenance, theta=theta, optimum=optimum)
    print(json.dumps(optimum))
