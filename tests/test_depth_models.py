"""Specifications of the MLP-coursework VGG family (VGG_08, VGG_38; BN and RC fixes) and the gradient-flow recorder."""
from __future__ import annotations

import math
from collections import OrderedDict

import pandas as pd
import pytest
import torch
from torch import nn

from dlperf.models.vgg_mlp import VARIANTS, vgg_mlp
from dlperf.train.grad_flow import GradFlowRecorder, layer_names

SEEDS = (0, 1, 2)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def first_over_last_mean_abs_grad(variant: str, seed: int) -> float:
    """Mean |grad| of VGG_38's first conv over that of its classifier, after one backward pass on random data."""
    torch.manual_seed(seed)
    model = vgg_mlp(38, variant)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 100, (8,))
    nn.functional.cross_entropy(model(x), y).backward()
    first = model.layer_dict["input_conv"].layer_dict["conv_0"].weight.grad
    last = model.logit_linear_layer.weight.grad
    return (first.abs().mean() / last.abs().mean()).item()


@pytest.mark.parametrize(("depth", "variant", "expected"), [
    (8, "plain", 59_716),
    (38, "plain", 336_196),
    (38, "bn", 338_500),
    (38, "rc", 336_196),
    (38, "bn_rc", 338_500),
])
def test_parameter_counts_match_the_coursework_table(depth, variant, expected):
    assert n_params(vgg_mlp(depth, variant)) == expected


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_maps_32px_images_to_100_logits(variant):
    assert vgg_mlp(38, variant)(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_bn_variant_has_a_batchnorm_after_every_conv():
    modules = list(vgg_mlp(38, "bn").modules())
    convs = [m for m in modules if isinstance(m, nn.Conv2d)]
    bns = [m for m in modules if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == 37 and len(bns) == len(convs)


def test_plain_variant_keeps_only_the_entry_batchnorm():
    bns = [name for name, m in vgg_mlp(38, "plain").named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns == ["layer_dict.input_conv.layer_dict.bn_0"]


def test_depth_must_be_eight_plus_a_multiple_of_six():
    with pytest.raises(ValueError, match="8 \\+ 6b"):
        vgg_mlp(21)


# Measured over seeds 0..9, batch 8: plain 8e-15 .. 3e-14, bn_rc 23 .. 31 (batch 16: 7e-15 .. 2e-14 and 16 .. 23).
# The bounds leave more than four orders of margin for plain and more than a factor ten for bn_rc.
@pytest.mark.parametrize("seed", SEEDS)
def test_vgg38_plain_gradients_vanish_before_the_first_layer(seed):
    assert first_over_last_mean_abs_grad("plain", seed) < 1e-9


@pytest.mark.parametrize("seed", SEEDS)
def test_vgg38_bn_rc_gradients_reach_the_first_layer(seed):
    assert first_over_last_mean_abs_grad("bn_rc", seed) > 1.0


def test_layer_names_are_the_weight_layers_in_forward_order():
    reduction_convs = [f"layer_dict.reduction_block_{i}.layer_dict.conv_{k}" for i in range(3) for k in range(2)]
    assert layer_names(vgg_mlp(8)) == ["layer_dict.input_conv.layer_dict.conv_0", *reduction_convs,
                                       "logit_linear_layer"]


def test_layer_names_leave_out_batchnorm_weights():
    names = layer_names(vgg_mlp(38, "bn_rc"))
    assert len(names) == 38 and names == layer_names(vgg_mlp(38, "plain"))


def test_recorder_names_every_weight_layer_once_per_recorded_step_every_n_steps():
    torch.manual_seed(0)
    model = vgg_mlp(8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    recorder = GradFlowRecorder(model, every=3)
    for step in range(7):
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.randint(0, 100, (4,)))
        loss.backward()
        recorder(step, model)
        optimizer.step()
    frame = recorder.to_frame()
    assert list(frame.columns) == ["step", "layer", "mean_abs_grad"]
    assert sorted(frame["step"].unique()) == [0, 3, 6]
    for _, rows in frame.groupby("step"):
        assert list(rows["layer"]) == layer_names(model)
    assert (frame["mean_abs_grad"] > 0).all() and frame["mean_abs_grad"].map(math.isfinite).all()


def test_recorder_gives_nan_for_a_layer_without_gradient():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    model[0](torch.ones(1, 2)).sum().backward()
    recorder = GradFlowRecorder(model, every=1)
    recorder(0, model)
    assert [row["layer"] for row in recorder.rows] == ["0", "1"]
    assert recorder.rows[0]["mean_abs_grad"] == 1.0 and math.isnan(recorder.rows[1]["mean_abs_grad"])


def test_recorder_csv_round_trips(tmp_path):
    model = nn.Sequential(OrderedDict(fc=nn.Linear(3, 2)))
    model(torch.ones(1, 3)).sum().backward()
    recorder = GradFlowRecorder(model, every=1)
    recorder(0, model)
    recorder.write_csv(tmp_path / "grad_flow.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "grad_flow.csv"), recorder.to_frame())


def test_the_gradient_ratio_is_the_first_layers_mean_grad_over_the_last_layers_in_the_first_recorded_epoch():
    from dlperf.depth.gradients import gradient_ratios

    flow = pd.DataFrame({"run": ["a"] * 6 + ["b"] * 2,
                         "step": [0, 0, 10, 10, 20, 20, 0, 0],
                         "layer": ["in", "out"] * 4,
                         "mean_abs_grad": [1e-9, 1.0, 3e-9, 1.0, 5.0, 1.0, 0.5, 0.25],
                         "epoch": [1, 1, 1, 1, 2, 2, 1, 1]})
    table = gradient_ratios(flow, {"a": {"model": "vgg38", "lr": 1e-3}, "b": {"model": "vgg08", "lr": 1e-3}})
    assert table.run.tolist() == ["a", "b"]
    assert table.ratio.tolist() == pytest.approx([2e-9, 2.0])   # epoch 2's record of run a is left out
    assert table.model.tolist() == ["vgg38", "vgg08"]


def test_the_grids_base_rate_rows_get_macros_without_the_rate_so_the_text_reads_any_grid():
    from dlperf.depth.values import base_lr, depth_values

    summary = pd.DataFrame({"model": ["vgg08", "vgg38", "vgg38_bn_rc", "vgg38_bn_rc"],
                            "lr": [3e-3, 3e-3, 3e-3, 1e-2], "params": [1, 2, 3, 3],
                            "train_loss": [3.0, 4.6, 2.5, 2.0], "val_loss": [3.1, 4.61, 2.6, 2.1],
                            "val_acc": [20.0, 1.0, 30.0, 45.0], "test_acc": [19.0, 1.0, 29.0, 44.0],
                            "test_loss": [3.2, 4.6, 2.7, 2.2]})
    grad = pd.DataFrame({"model": ["vgg38"], "lr": [3e-3], "ratio": [1e-9]})
    assert base_lr(summary) == 3e-3
    assert base_lr(summary.iloc[[0, 3]]) == 3e-3   # a tie goes to the smaller rate
    depth = {"train": {"epochs": 4, "batch_size": 20, "optimizer": {"name": "adam", "weight_decay": 0.0},
                       "schedule": {"t_max": 100, "eta_min": 2e-5, "step_per": "iteration"}},
             "num_filters": 16, "n_train": 5000, "val_size": 500, "grad_flow": {"every": 10}}
    values = depth_values(summary=summary, grad_ratio=grad, runs={"r": {"config": {"depth": depth}}},
                          dataset={"classes": 100})
    assert values["DepthValAccuracyVggThirtyEightBnRc"] == values["DepthValAccuracyVggThirtyEightBnRcLrThreeEThree"]
    assert values["DepthValAccuracyVggThirtyEightBnRcLrOneETwo"] == "45.0"
    assert values["DepthGradLogRatioVggThirtyEight"] == "-9.0"
    assert values["DepthBaseLr"] == "0.003"
    assert values["DepthRepairAccuracies"] == (r"30.0\,\% (VGG-38 BN+RC at 0.003) and "
                                               r"45.0\,\% (VGG-38 BN+RC at 0.01)")   # the repaired runs of the grid
    assert values["DepthRepairGradRatios"] == "not recorded"
