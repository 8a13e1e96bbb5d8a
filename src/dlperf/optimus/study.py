"""The Optimus analysis over a set of training runs: fits, regression, prediction, time to accuracy.

Functions take the runs' logs as DataFrames and return DataFrames; the workflow's scripts do the I/O.
A run is named ``<arch>-<device label>-s<seed>``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dlperf.models.archs import arch_depth
from dlperf.optimus.accuracy import fit_loss_to_accuracy, measured_epochs_to_accuracy, predicted_epochs_to_accuracy
from dlperf.optimus.loss_model import fit_loss_curve, loss_curve
from dlperf.optimus.regression import fit_beta_regression, regression_table

FIT_COLUMNS = ["arch", "depth", "device", "seed", "beta0", "beta1", "beta2", "rmse", "r2", "n_points", "status"]
BETAS = ("beta0", "beta1", "beta2")


def parse_run(name: str) -> dict:
    arch, device, seed = name.rsplit("-", 2)
    return {"arch": arch, "depth": arch_depth(arch), "device": device, "seed": int(seed.removeprefix("s"))}


def binned_loss(steps: pd.DataFrame, bins_per_epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean training loss over windows of 1/bins_per_epoch epoch, at each window's end (k in epochs).

    Per-step losses are noisy and, at full scale, 137k points per run; binning keeps every part of training
    represented while making the fit cheap and its residuals meaningful.
    """
    k = steps["epoch"].to_numpy(float)
    bins = np.ceil(k * bins_per_epoch - 1e-9).astype(int)
    grouped = pd.DataFrame({"bin": bins, "loss": steps["loss"].to_numpy(float)}).groupby("bin")["loss"].mean()
    return grouped.index.to_numpy(float) / bins_per_epoch, grouped.to_numpy(float)


def fit_runs(steps_by_run: dict[str, pd.DataFrame], bins_per_epoch: int, weighting: str) -> pd.DataFrame:
    """One row of β per run (loss_fits.csv); a failed fit keeps its row, with its status and message."""
    rows = []
    for name, steps in sorted(steps_by_run.items()):
        k, loss = binned_loss(steps, bins_per_epoch)
        fit = fit_loss_curve(k, loss, weighting=weighting)
        rows.append({**parse_run(name), "beta0": fit.beta0, "beta1": fit.beta1, "beta2": fit.beta2, "rmse": fit.rmse,
                     "r2": fit.r2, "n_points": fit.n_points, "status": fit.status, "message": fit.message})
    return pd.DataFrame(rows, columns=FIT_COLUMNS + ["message"])


def regress_betas(fits: pd.DataFrame, form: str):
    """β_i = a_i·depth + b_i,device for each β, on the successful fits; returns (models, table)."""
    usable = fits[fits.status == "ok"]
    models = {beta: fit_beta_regression(usable, target=beta, form=form) for beta in BETAS}
    return models, regression_table(models)


def accuracy_map(epochs_by_run: dict[str, pd.DataFrame]):
    """Test accuracy as a non-increasing function of training loss, pooled over the regression runs."""
    loss = np.concatenate([df.train_loss.to_numpy(float) for df in epochs_by_run.values()])
    acc = np.concatenate([df.test_acc.to_numpy(float) for df in epochs_by_run.values()])
    return fit_loss_to_accuracy(loss, acc)


def predict_target(models, target_arch: str, target_steps: dict[str, pd.DataFrame],
                   target_epochs: dict[str, pd.DataFrame], acc_map, target_accuracy: float, bins_per_epoch: int,
                   max_epochs: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predicted vs measured loss curve and epochs to the target accuracy, per device label.

    Returns (prediction: device, epoch, predicted_loss, measured_loss;
             error: device, mape_percent, predicted_epochs_to_target, measured_epochs_to_target).
    """
    depth = arch_depth(target_arch)
    curves, errors = [], []
    for run, steps in sorted(target_steps.items()):
        device = parse_run(run)["device"]
        beta = [models[b].predict(depth, device) for b in BETAS]
        k, measured = binned_loss(steps, bins_per_epoch)
        predicted = loss_curve(k, *beta)
        curves.append(pd.DataFrame({"device": device, "epoch": k, "predicted_loss": predicted,
                                    "measured_loss": measured}))
        epochs = target_epochs[run]
        reached = measured_epochs_to_accuracy(epochs.epoch.to_numpy(), epochs.test_acc.to_numpy(), target_accuracy)
        errors.append({
            "device": device,
            "mape_percent": float(100 * np.mean(np.abs(predicted - measured) / np.abs(measured))),
            "predicted_epochs_to_target": predicted_epochs_to_accuracy(beta, acc_map, target_accuracy, max_epochs),
            "measured_epochs_to_target": "not reached" if reached is None else reached,
            "beta0": beta[0], "beta1": beta[1], "beta2": beta[2],
        })
    return pd.concat(curves, ignore_index=True), pd.DataFrame(errors)
