"""Specifications of per-layer FLOP counting (PALEO convention) against hand counts and published totals."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dlperf.flops.flops import count_layers, layers_table, model_flops_per_step, summarize
from dlperf.flops.study import torchvision_model

# Conv2d(3, 8, 3, padding=1) on 1x3x16x16: every one of 8x16x16 outputs sums 3x3x3 products.
CONV_MACS = 8 * 16 * 16 * (3 * 3 * 3)  # 55 296
# Linear(2048, 10) on the flattened 8x16x16 map: 10 outputs, each 2048 products.
LINEAR_MACS = 10 * (8 * 16 * 16)  # 20 480
CONV_PARAMS = 8 * 3 * 3 * 3 + 8
LINEAR_PARAMS = 2048 * 10 + 10


def two_layer() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 16 * 16, 10))


def meta_torchvision(name: str) -> nn.Module:
    with torch.device("meta"):
        return torchvision_model(name)


def test_two_layer_model_counts_exactly_by_hand():
    rows = count_layers(two_layer(), (1, 3, 16, 16))
    assert [(r.name, r.type, r.input_shape, r.output_shape, r.params, r.macs, r.flops) for r in rows] == [
        ("0", "Conv2d", (1, 3, 16, 16), (1, 8, 16, 16), CONV_PARAMS, CONV_MACS, 2 * CONV_MACS),
        ("1", "Flatten", (1, 8, 16, 16), (1, 2048), 0, 0, 0),
        ("2", "Linear", (1, 2048), (1, 10), LINEAR_PARAMS, LINEAR_MACS, 2 * LINEAR_MACS),
    ]
    assert summarize(rows) == {"params": CONV_PARAMS + LINEAR_PARAMS, "macs": CONV_MACS + LINEAR_MACS,
                               "flops": 2 * (CONV_MACS + LINEAR_MACS),
                               "conv_share": CONV_MACS / (CONV_MACS + LINEAR_MACS)}


def test_counts_scale_with_batch():
    assert summarize(count_layers(two_layer(), (4, 3, 16, 16)))["macs"] == 4 * (CONV_MACS + LINEAR_MACS)


def test_one_flop_per_mac_halves_flops_and_keeps_macs():
    two = count_layers(two_layer(), (1, 3, 16, 16))
    one = count_layers(two_layer(), (1, 3, 16, 16), flop_per_mac=1)
    assert [r.macs for r in one] == [r.macs for r in two]
    assert [2 * r.flops for r in one] == [r.flops for r in two]


def test_backward_is_twice_forward_per_layer_paleo_convention():
    rows = count_layers(two_layer(), (1, 3, 16, 16), backward=True)
    assert [r.backward_flops for r in rows] == [2 * r.flops for r in rows] == [4 * CONV_MACS, 0, 4 * LINEAR_MACS]
    assert [r.flops_fwd_bwd for r in rows] == [3 * r.flops for r in rows]


def test_paleo_backward_overstates_a_real_backward_only_by_the_first_layers_input_gradient():
    with torch.device("meta"):
        model = two_layer()
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, 16, 16, device="meta")).sum().backward()
    real_backward = counter.get_total_flops() - 2 * (CONV_MACS + LINEAR_MACS)
    paleo_backward = sum(r.backward_flops for r in count_layers(model, (1, 3, 16, 16), backward=True))
    assert paleo_backward - real_backward == 2 * CONV_MACS


def test_elementwise_option_adds_one_flop_per_element_of_bn_relu_pool_and_add():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.bn = nn.BatchNorm2d(3)
            self.relu = nn.ReLU()
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            return self.pool(self.relu(self.bn(self.conv(x))) + x)

    elements = 3 * 16 * 16
    conv_macs = elements * 27
    plain = count_layers(Block(), (1, 3, 16, 16))
    rows = count_layers(Block(), (1, 3, 16, 16), include_elementwise=True)
    assert [(r.name, r.type, r.macs, r.flops) for r in plain] == [
        ("conv", "Conv2d", conv_macs, 2 * conv_macs), ("bn", "BatchNorm2d", 0, 0), ("relu", "ReLU", 0, 0),
        ("pool", "MaxPool2d", 0, 0)]
    assert [(r.name, r.type, r.macs, r.flops) for r in rows] == [
        ("conv", "Conv2d", conv_macs, 2 * conv_macs), ("bn", "BatchNorm2d", 0, elements),
        ("relu", "ReLU", 0, elements), ("Block", "functional", 0, elements),
        ("pool", "MaxPool2d", 0, elements // 4)]


def test_repeated_calls_get_numbered_rows_and_params_are_charged_once():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.fc(self.act(self.fc(x))))

    rows = count_layers(Twice(), (2, 4))
    assert [(r.name, r.params, r.macs) for r in rows] == [
        ("fc", 20, 32), ("act", 0, 0), ("fc#2", 0, 32), ("act#2", 0, 0)]


def test_counting_leaves_the_callers_model_untouched():
    model = two_layer().train()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    count_layers(model, (1, 3, 16, 16), include_elementwise=True)
    assert model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())


def test_layers_table_has_one_row_per_call_and_shares_summing_to_one():
    table = layers_table(count_layers(two_layer(), (1, 3, 16, 16), backward=True))
    assert list(table.columns) == ["layer", "type", "input_shape", "output_shape", "params", "macs", "flops",
                                   "share", "backward_flops", "flops_fwd_bwd"]
    assert table["output_shape"].tolist() == ["1x8x16x16", "1x2048", "1x10"]
    assert table["share"].sum() == pytest.approx(1.0)
    assert table.attrs["conv_share"] == pytest.approx(CONV_MACS / (CONV_MACS + LINEAR_MACS))


def test_flops_per_training_step_is_three_forwards_at_the_batch():
    assert model_flops_per_step(two_layer(), (3, 16, 16), batch=4) == 4 * 3 * 2 * (CONV_MACS + LINEAR_MACS)


@pytest.mark.parametrize(("name", "gmacs"), [("vgg16", 15.47), ("vgg19", 19.63), ("resnet50", 4.11)])
def test_torchvision_totals_match_published_gmacs_within_one_percent(name, gmacs):
    macs = summarize(count_layers(meta_torchvision(name), (1, 3, 224, 224)))["macs"]
    assert macs / 1e9 == pytest.approx(gmacs, rel=0.01)


@pytest.mark.parametrize(("name", "share"), [("vgg16", 0.9920), ("vgg19", 0.9937)])
def test_vgg_convolutions_hold_99_percent_of_the_work(name, share):
    assert summarize(count_layers(meta_torchvision(name), (1, 3, 224, 224)))["conv_share"] == pytest.approx(
        share, abs=0.001)


def test_googlenet_matches_its_inception_table_by_hand():
    # (in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj) and the map side; torchvision's "5x5"
    # branch is a 3x3 convolution (kept for compatibility with its published weights).
    inception = [((192, 64, 96, 128, 16, 32, 32), 28), ((256, 128, 128, 192, 32, 96, 64), 28),
                 ((480, 192, 96, 208, 16, 48, 64), 14), ((512, 160, 112, 224, 24, 64, 64), 14),
                 ((512, 128, 128, 256, 24, 64, 64), 14), ((512, 112, 144, 288, 32, 64, 64), 14),
                 ((528, 256, 160, 320, 32, 128, 128), 14), ((832, 256, 160, 320, 32, 128, 128), 7),
                 ((832, 384, 192, 384, 48, 128, 128), 7)]
    stem = 7 * 7 * 3 * 64 * 112**2 + 64 * 64 * 56**2 + 3 * 3 * 64 * 192 * 56**2
    blocks = sum(side**2 * (cin * c1 + cin * r3 + 9 * r3 * c3 + cin * r5 + 9 * r5 * c5 + cin * pool)
                 for (cin, c1, r3, c3, r5, c5, pool), side in inception)
    classifier = 1024 * 1000
    macs = summarize(count_layers(meta_torchvision("googlenet"), (1, 3, 224, 224)))["macs"]
    assert macs == stem + blocks + classifier
    assert 1.48e9 <= macs <= 1.62e9  # the published 1.50-1.60 G range


def test_resnet50_rows_follow_execution_order_with_numbered_relu_reuse():
    rows = count_layers(meta_torchvision("resnet50"), (1, 3, 224, 224))
    assert [r.name for r in rows[:12]] == [
        "conv1", "bn1", "relu", "maxpool", "layer1.0.conv1", "layer1.0.bn1", "layer1.0.relu",
        "layer1.0.conv2", "layer1.0.bn2", "layer1.0.relu#2", "layer1.0.conv3", "layer1.0.bn3"]
    assert rows[-1].name == "fc" and sum(r.type == "Conv2d" for r in rows) == 53
    assert summarize(rows)["params"] == 25_557_032


def test_torchvision_googlenet_has_no_auxiliary_heads_and_unknown_names_fail():
    assert meta_torchvision("googlenet").aux1 is None
    with pytest.raises(ValueError, match="alexnet"):
        torchvision_model("alexnet")
