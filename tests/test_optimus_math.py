"""Specifications of the Optimus maths: loss-model fit, β regression, loss→accuracy map, speed model."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dlperf.optimus import loss_model
from dlperf.optimus.accuracy import (
    fit_loss_to_accuracy,
    measured_epochs_to_accuracy,
    pool_adjacent_violators,
    predicted_epochs_to_accuracy,
)
from dlperf.optimus.loss_model import epochs_to_loss, fit_loss_curve, loss_curve, optimus_sigma
from dlperf.optimus.regression import fit_beta_regression, regression_table
from dlperf.optimus.speed_model import (
    derive_theta,
    numeric_optimal_workers,
    optimal_workers,
    steps_needed,
    sync_speed,
    time_to_accuracy,
)

EPOCHS = np.linspace(0.0, 50.0, 101)


def noisy_curve(beta, noise, seed=0, k=EPOCHS):
    return loss_curve(k, *beta) + np.random.default_rng(seed).normal(0.0, noise, k.size)


# ---------------------------------------------------------------- loss model

def test_fit_recovers_planted_beta_from_noisy_curve_within_three_percent():
    fit = fit_loss_curve(EPOCHS, noisy_curve((0.8, 0.5, 0.3), noise=0.005))
    assert fit.status == "ok"
    assert fit.beta == pytest.approx((0.8, 0.5, 0.3), rel=0.03)
    assert fit.n_points == EPOCHS.size
    assert fit.rmse < 0.0075
    assert fit.r2 > 0.999


def test_fit_recovers_noiseless_curve_exactly_with_both_weightings():
    for weighting in ("optimus", "none"):
        fit = fit_loss_curve(EPOCHS, loss_curve(EPOCHS, 0.8, 0.5, 0.3), weighting=weighting)
        assert fit.beta == pytest.approx((0.8, 0.5, 0.3), rel=1e-6)


def test_fit_recovers_curve_that_levels_off_near_chance_loss():
    """A CIFAR-100 model that barely learns: loss from 5.6 down to about ln(100) ≈ 4.6."""
    fit = fit_loss_curve(EPOCHS, noisy_curve((0.3, 1.0, 4.6), noise=0.005))
    assert fit.status == "ok"
    assert fit.beta == pytest.approx((0.3, 1.0, 4.6), rel=0.05)
    assert fit.beta2 == pytest.approx(4.6, rel=0.002)


def test_fit_of_curve_stuck_at_chance_finds_the_plateau():
    """VGG38 without BN/RC: loss 4.65 → 4.605, a drop of the order of the noise."""
    fit = fit_loss_curve(EPOCHS, noisy_curve((2.0, 20.0, 4.6), noise=0.001))
    assert fit.status == "ok"
    assert fit.beta2 == pytest.approx(4.6, rel=1e-3)
    assert fit.rmse < 0.0015


def test_fit_drops_non_finite_points_and_counts_them():
    k = EPOCHS.copy()
    loss = loss_curve(k, 0.8, 0.5, 0.3)
    loss[[3, 40]] = [np.nan, np.inf]
    k[70] = np.nan
    fit = fit_loss_curve(k, loss)
    assert fit.status == "ok"
    assert fit.n_points == EPOCHS.size - 3
    assert "dropped 3 non-finite point(s)" in fit.message
    assert fit.beta == pytest.approx((0.8, 0.5, 0.3), rel=1e-6)


def test_fit_with_too_few_points_returns_status_not_exception():
    fit = fit_loss_curve([0.0, 1.0, 2.0], [2.3, np.nan, 1.0])
    assert fit.status == "too_few_points"
    assert fit.n_points == 2
    assert all(math.isnan(b) for b in fit.beta)
    assert "dropped 1 non-finite point(s)" in fit.message
    assert fit_loss_curve([], []).status == "too_few_points"
    assert fit_loss_curve([1.0, 1.0, 2.0, 2.0], [2.0, 2.1, 1.5, 1.4]).status == "too_few_points"


def test_fit_reports_curve_fit_failure_as_status(monkeypatch):
    def no_convergence(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found")

    monkeypatch.setattr(loss_model, "curve_fit", no_convergence)
    fit = fit_loss_curve(EPOCHS, loss_curve(EPOCHS, 0.8, 0.5, 0.3))
    assert fit.status == "failed"
    assert "Optimal parameters not found" in fit.message
    assert all(math.isnan(b) for b in fit.beta)


def test_optimus_sigma_splits_points_into_three_segments_weighted_by_powers_of_four():
    np.testing.assert_array_equal(optimus_sigma(7), [1, 1, 1, 1 / 4, 1 / 4, 1 / 4, 1 / 16])
    np.testing.assert_array_equal(optimus_sigma(6), [1, 1, 1 / 4, 1 / 4, 1 / 16, 1 / 16])


def test_optimus_weighting_fits_the_tail_after_a_late_kink_better():
    """A learning-rate drop at epoch 40 of 60 lowers the last third by 0.15.

    Optimus trusts the late points more, so it follows the tail at the expense of the early points.
    """
    k = np.linspace(0.0, 60.0, 121)
    loss = loss_curve(k, 0.8, 0.5, 0.3) - 0.15 * np.clip((k - 40.0) / 2.0, 0.0, 1.0)
    tail = k >= 40.0
    fits = {w: fit_loss_curve(k, loss, weighting=w) for w in ("optimus", "none")}
    tail_rmse = {
        w: float(np.sqrt(np.mean((loss_curve(k[tail], *fit.beta) - loss[tail]) ** 2)))
        for w, fit in fits.items()
    }
    assert tail_rmse["optimus"] < 0.5 * tail_rmse["none"]
    assert fits["optimus"].rmse > fits["none"].rmse
    assert fits["optimus"].beta2 < fits["none"].beta2 - 0.1


def test_fit_rejects_unknown_weighting():
    with pytest.raises(ValueError, match="weighting"):
        fit_loss_curve(EPOCHS, EPOCHS, weighting="inverse")


def test_epochs_to_loss_inverts_loss_curve():
    beta = (0.8, 0.5, 0.3)
    for k in (0.5, 3.0, 17.25, 120.0):
        assert epochs_to_loss(beta, float(loss_curve(k, *beta))) == pytest.approx(k, rel=1e-9)
    assert epochs_to_loss(beta, 0.4) == pytest.approx((1 / 0.1 - 0.5) / 0.8)


def test_epochs_to_loss_is_inf_at_or_below_the_asymptote_and_zero_above_the_start():
    beta = (0.8, 0.5, 0.3)
    assert epochs_to_loss(beta, 0.3) == math.inf
    assert epochs_to_loss(beta, 0.1) == math.inf
    assert epochs_to_loss(beta, 2.5) == 0.0
    assert epochs_to_loss(beta, 2.3) == pytest.approx(0.0, abs=1e-12)
    assert epochs_to_loss((0.0, 0.5, 0.3), 1.0) == math.inf
    assert math.isnan(epochs_to_loss((math.nan,) * 3, 1.0))


# ---------------------------------------------------------------- β regression

DEPTHS = [18, 20, 32, 44, 56]
INTERCEPTS = {"k80": 0.5, "p100": 0.7, "v100": 0.9}


def planted_fits(noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    rows = [
        {"depth": d, "device": dev, "beta0": 0.01 * d + b + rng.normal(0.0, noise),
         "beta1": 0.002 * d + 0.1, "beta2": math.exp(-0.02 * d + b)}
        for dev, b in INTERCEPTS.items() for d in DEPTHS
    ]
    return pd.DataFrame(rows)


def test_regression_recovers_planted_slope_and_device_intercepts_exactly():
    fit = fit_beta_regression(planted_fits(), target="beta0")
    assert fit.coefficients["depth"] == pytest.approx(0.01, abs=1e-12)
    for device, b in INTERCEPTS.items():
        assert fit.coefficients[f"device[{device}]"] == pytest.approx(b, abs=1e-12)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.rmse == pytest.approx(0.0, abs=1e-12)
    assert fit.n == 15
    assert fit.predict(50, "p100") == pytest.approx(1.2)
    np.testing.assert_allclose(fit.predict([20, 50], "k80"), [0.7, 1.0])


def test_regression_recovers_planted_dependence_closely_from_noisy_fits():
    fit = fit_beta_regression(planted_fits(noise=0.01, seed=1), target="beta0")
    assert fit.coefficients["depth"] == pytest.approx(0.01, rel=0.05)
    for device, b in INTERCEPTS.items():
        assert fit.coefficients[f"device[{device}]"] == pytest.approx(b, abs=0.03)
    assert fit.rmse < 0.015


def test_regression_with_one_device_is_the_plain_least_squares_line():
    df = planted_fits(noise=0.01, seed=2).query("device == 'v100'")
    fit = fit_beta_regression(df, target="beta0")
    slope, intercept = np.polyfit(df["depth"], df["beta0"], 1)
    assert fit.coefficients == pytest.approx({"depth": slope, "device[v100]": intercept})


def test_log_regression_recovers_planted_exponential_and_predicts_positive_beta():
    fit = fit_beta_regression(planted_fits(), target="beta2", form="log")
    assert fit.coefficients["depth"] == pytest.approx(-0.02, abs=1e-12)
    assert fit.coefficients["device[v100]"] == pytest.approx(0.9, abs=1e-12)
    assert fit.predict(1000, "k80") == pytest.approx(math.exp(-20 + 0.5))
    assert fit.predict(1000, "k80") > 0


def test_log_regression_rejects_non_positive_beta():
    df = planted_fits()
    df.loc[0, "beta2"] = 0.0
    with pytest.raises(ValueError, match="> 0"):
        fit_beta_regression(df, target="beta2", form="log")


def test_linear_prediction_is_clipped_at_zero():
    fit = fit_beta_regression(planted_fits(), target="beta0")
    assert fit.predict(-1000, "k80") == 0.0


def test_predict_on_unknown_device_raises_naming_it():
    fit = fit_beta_regression(planted_fits(), target="beta0")
    with pytest.raises(ValueError, match="'a100'"):
        fit.predict(50, "a100")


def test_regression_refuses_when_depth_and_device_cannot_be_separated():
    df = pd.DataFrame({"depth": [20, 32], "device": ["k80", "v100"], "beta0": [1.0, 2.0]})
    with pytest.raises(ValueError, match="two different depths"):
        fit_beta_regression(df, target="beta0")


def test_regression_table_lists_every_coefficient_with_fit_quality():
    df = planted_fits()
    fits = {
        "beta0": fit_beta_regression(df, target="beta0"),
        "beta1": fit_beta_regression(df, target="beta1"),
        "beta2": fit_beta_regression(df, target="beta2", form="log"),
    }
    table = regression_table(fits)
    assert list(table.columns) == ["target", "term", "coefficient", "r2", "rmse", "n"]
    assert len(table) == 12
    assert table["target"].unique().tolist() == ["beta0", "beta1", "log(beta2)"]
    row = table.query("target == 'beta0' and term == 'device[p100]'").iloc[0]
    assert row["coefficient"] == pytest.approx(0.7)
    assert row["n"] == 15


# ---------------------------------------------------------------- loss → accuracy

def test_pool_adjacent_violators_pools_by_weighted_mean():
    y, weight = np.array([1.0, 3.0, 2.0, 4.0]), np.array([1.0, 1.0, 3.0, 1.0])
    means, weights, starts = pool_adjacent_violators(y, weight)
    np.testing.assert_allclose(means, [1.0, 2.25, 4.0])
    np.testing.assert_array_equal(weights, [1.0, 4.0, 1.0])
    np.testing.assert_array_equal(starts, [0, 1, 3])


def test_isotonic_map_reproduces_pav_on_hand_example():
    acc_map = fit_loss_to_accuracy([1, 2, 3, 4, 5], [0.9, 0.7, 0.8, 0.5, 0.6])
    np.testing.assert_allclose(acc_map.loss, [1.0, 2.5, 4.5])
    np.testing.assert_allclose(acc_map.accuracy, [0.9, 0.75, 0.55])
    assert acc_map(1.75) == pytest.approx(0.825)
    assert acc_map(0.0) == pytest.approx(0.9)
    assert acc_map(10.0) == pytest.approx(0.55)


def test_isotonic_map_merges_equal_losses_and_ignores_non_finite_pairs():
    acc_map = fit_loss_to_accuracy([1, 1, 2, np.nan, 3], [0.8, 0.6, 0.5, 0.9, np.inf])
    np.testing.assert_allclose(acc_map.loss, [1.0, 2.0])
    np.testing.assert_allclose(acc_map.accuracy, [0.7, 0.5])


def test_isotonic_map_is_non_increasing_in_loss():
    rng = np.random.default_rng(3)
    loss = rng.uniform(0.05, 2.3, 400)
    acc = 0.1 + 0.85 / (1.0 + np.exp(4.0 * (loss - 1.0))) + rng.normal(0.0, 0.05, loss.size)
    acc_map = fit_loss_to_accuracy(loss, acc)
    assert np.all(np.diff(acc_map(np.linspace(0.0, 2.5, 1001))) <= 0.0)
    assert np.all(np.diff(acc_map.loss) > 0.0)


def test_predicted_epochs_to_accuracy_is_first_grid_point_reaching_target():
    acc_map = fit_loss_to_accuracy([0.1, 1.0, 2.3], [0.95, 0.5, 0.1])
    beta = (0.8, 0.5, 0.3)
    # acc = 0.8 at loss 0.4, which the curve reaches at k = (1/0.1 - 0.5)/0.8 = 11.875 → grid 11.88.
    assert predicted_epochs_to_accuracy(beta, acc_map, 0.8, max_epochs=100) == pytest.approx(11.88)
    assert predicted_epochs_to_accuracy(beta, acc_map, 0.8, max_epochs=10) == math.inf
    assert predicted_epochs_to_accuracy(beta, acc_map, 0.92, max_epochs=1000) == math.inf
    assert predicted_epochs_to_accuracy(beta, acc_map, 0.1, max_epochs=100) == 0.0


def test_measured_epochs_to_accuracy_is_first_epoch_reaching_target_or_none():
    epochs = [3, 1, 2, 4]
    acc = [0.93, 0.5, 0.91, 0.95]
    assert measured_epochs_to_accuracy(epochs, acc, 0.92) == 3.0
    assert measured_epochs_to_accuracy(epochs, acc, 0.91) == 2.0
    assert measured_epochs_to_accuracy(epochs, acc, 0.99) is None


# ---------------------------------------------------------------- speed model

THETAS = [
    {"theta0": 0.002, "theta1": 0.01, "theta2": 0.16, "theta3": 0.001, "theta4": 0.002},
    {"theta0": 0.01, "theta1": 0.0, "theta2": 0.05, "theta3": 0.02, "theta4": 0.01},
    {"theta0": 0.0005, "theta1": 0.05, "theta2": 0.01, "theta3": 0.0, "theta4": 0.0},
    {"theta0": 0.03, "theta1": 0.02, "theta2": 0.9, "theta3": 0.004, "theta4": 0.05},
]


def test_sync_speed_matches_hand_computation_and_vectorises_over_workers():
    theta = THETAS[0]
    # w=4, p=2, M=128: 0.002·32 + 0.01 + 0.16·2 + 0.004 + 0.004 = 0.402 s per step.
    assert sync_speed(2, 4, theta, 128) == pytest.approx(1 / 0.402)
    # w=1: 0.256 + 0.01 + 0.08 + 0.001 + 0.004 = 0.351 s per step.
    np.testing.assert_allclose(sync_speed(2, [1, 4], theta, 128), [1 / 0.351, 1 / 0.402])


@pytest.mark.parametrize("theta", THETAS)
@pytest.mark.parametrize("p", [2, 4])
def test_numeric_optimum_is_the_better_integer_neighbour_of_closed_form(theta, p):
    w_star = optimal_workers(p, theta, 128)
    best = numeric_optimal_workers(p, theta, 128, w_max=int(4 * w_star) + 10)
    low, high = max(math.floor(w_star), 1), math.ceil(w_star)
    assert best in {low, high}
    assert sync_speed(p, best, theta, 128) == max(sync_speed(p, [low, high], theta, 128))


def test_optimal_workers_closed_form_and_unbounded_case():
    assert optimal_workers(4, THETAS[0], 128) == pytest.approx(math.sqrt(0.002 * 128 / (0.16 / 4 + 0.001)))
    no_growth = {"theta0": 0.01, "theta1": 0.1, "theta2": 0.0, "theta3": 0.0, "theta4": 0.1}
    assert optimal_workers(2, no_growth, 128) == math.inf
    assert numeric_optimal_workers(2, no_growth, 128, w_max=16) == 16


def test_derive_theta_reproduces_hand_computed_values():
    theta = derive_theta(
        seconds_per_sample=0.002,
        model_bytes=102_400_000,        # ResNet-50: 25.6 M float32 parameters
        bandwidth_bytes_per_s=1.25e9,   # 10 Gbit/s
        step_overhead_s=0.01,
        per_worker_overhead_s=0.001,
        per_ps_overhead_s=0.002,
    )
    assert theta["theta0"] == 0.002
    assert theta["theta1"] == 0.01
    assert theta["theta2"] == pytest.approx(0.16384)   # 2 × 102.4 MB / 1.25 GB/s
    assert theta["theta3"] == 0.001
    assert theta["theta4"] == 0.002
    assert "theta2=2*model_bytes/bandwidth_bytes_per_s" in theta["provenance"]
    assert "model_bytes=1.024e+08" in theta["provenance"]


def test_derive_theta_rejects_zero_bandwidth_and_negative_inputs():
    kwargs = dict(seconds_per_sample=0.002, model_bytes=1e8, bandwidth_bytes_per_s=1e9,
                  step_overhead_s=0.0, per_worker_overhead_s=0.0, per_ps_overhead_s=0.0)
    with pytest.raises(ValueError, match="bandwidth"):
        derive_theta(**{**kwargs, "bandwidth_bytes_per_s": 0.0})
    with pytest.raises(ValueError, match="step_overhead_s"):
        derive_theta(**{**kwargs, "step_overhead_s": -1.0})


def test_steps_needed_counts_the_partial_last_batch():
    assert steps_needed(350, 50_000, 128) == 350 * 391
    assert steps_needed(2.5, 100, 30) == 10.0
    assert steps_needed(math.inf, 50_000, 128) == math.inf


def test_time_to_accuracy_has_one_row_per_server_and_worker_count():
    theta = THETAS[0]
    table = time_to_accuracy([2, 4], range(1, 9), theta, 128, steps_needed=136_850)
    assert list(table.columns) == ["ps", "workers", "steps_per_s", "hours_to_target"]
    assert len(table) == 16
    row = table.query("ps == 2 and workers == 4").iloc[0]
    assert row["steps_per_s"] == pytest.approx(1 / 0.402)
    assert row["hours_to_target"] == pytest.approx(136_850 * 0.402 / 3600)
    assert time_to_accuracy(2, [4], theta, 128, 1.0)["ps"].tolist() == [2]
