"""Specifications of MobileNetV1-SSD: pytorch-ssd's state_dict, its output modes, other widths and sizes."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import dlperf.data
from dlperf.detection.box_utils import center_form_to_corner_form
from dlperf.detection.priors import generate_ssd_priors, mobilenet_v1_specs
from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd

# shared/reference/pytorch_ssd_mb1_state_dict.json, dumped from pytorch-ssd, carried in the package for the mirror
REFERENCE_JSON = Path(dlperf.data.__file__).parent / "pytorch_ssd_mb1_state_dict.json"

# pytorch-ssd's mb1-ssd: base-net blocks as (in, out) channels, extras as (in, bottleneck, out), head inputs.
DEPTHWISE = [(32, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512)] + [(512, 512)] * 5 + [
    (512, 1024),
    (1024, 1024),
]
EXTRAS = [(1024, 256, 512), (512, 128, 256), (256, 128, 256), (256, 128, 256)]
HEAD_INPUTS = [512, 1024, 512, 256, 256, 256]


def batch_norm(prefix: str, channels: int) -> dict[str, list[int]]:
    return {
        f"{prefix}.weight": [channels],
        f"{prefix}.bias": [channels],
        f"{prefix}.running_mean": [channels],
        f"{prefix}.running_var": [channels],
        f"{prefix}.num_batches_tracked": [],
    }


@pytest.fixture(scope="module")
def reference_shapes() -> dict[str, list[int]]:
    """Ordered key → shape map of pytorch-ssd's ``create_mobilenetv1_ssd(21)``, written out from its
    construction rules (reference ssd_onnx_server.md §1.1, §1.2, §1.5)."""
    shapes = {"base_net.0.0.weight": [32, 3, 3, 3], **batch_norm("base_net.0.1", 32)}
    for k, (inp, out) in enumerate(DEPTHWISE, start=1):
        shapes[f"base_net.{k}.0.weight"] = [inp, 1, 3, 3]
        shapes.update(batch_norm(f"base_net.{k}.1", inp))
        shapes[f"base_net.{k}.3.weight"] = [out, inp, 1, 1]
        shapes.update(batch_norm(f"base_net.{k}.4", out))
    for k, (inp, bottleneck, out) in enumerate(EXTRAS):
        shapes[f"extras.{k}.0.weight"] = [bottleneck, inp, 1, 1]
        shapes[f"extras.{k}.0.bias"] = [bottleneck]
        shapes[f"extras.{k}.2.weight"] = [out, bottleneck, 3, 3]
        shapes[f"extras.{k}.2.bias"] = [out]
    for name, outputs in (("classification_headers", 6 * 21), ("regression_headers", 6 * 4)):
        for k, inp in enumerate(HEAD_INPUTS):
            shapes[f"{name}.{k}.weight"] = [outputs, inp, 3, 3]
            shapes[f"{name}.{k}.bias"] = [outputs]
    return shapes


@pytest.fixture(scope="module")
def voc_model():
    return mobilenet_v1_ssd(21)


def random_checkpoint(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """A checkpoint with pytorch-ssd's keys and shapes and random values (the real one is not reachable)."""
    generator = torch.Generator().manual_seed(0)
    return {
        key: torch.tensor(7) if key.endswith("num_batches_tracked") else torch.randn(shape, generator=generator)
        for key, shape in shapes.items()
    }


def test_written_out_reference_equals_the_map_dumped_from_pytorch_ssd(reference_shapes):
    assert json.loads(REFERENCE_JSON.read_text()) == reference_shapes
    assert list(json.loads(REFERENCE_JSON.read_text())) == list(reference_shapes)


def test_state_dict_has_pytorch_ssds_202_keys_in_order_with_equal_shapes(voc_model, reference_shapes):
    state = voc_model.state_dict()
    assert len(state) == 202
    assert list(state) == list(reference_shapes)
    assert {k: list(v.shape) for k, v in state.items()} == reference_shapes


def test_random_reference_checkpoint_loads_strictly_and_its_values_land(voc_model, reference_shapes):
    checkpoint = random_checkpoint(reference_shapes)
    voc_model.load_state_dict(checkpoint, strict=True)
    state = voc_model.state_dict()
    for key in ("base_net.0.0.weight", "base_net.13.4.running_var", "extras.3.2.bias", "regression_headers.5.weight"):
        assert torch.equal(state[key], checkpoint[key])


def test_parameter_count_for_21_classes_matches_pytorch_ssd(voc_model):
    def count(prefix: str) -> int:
        return sum(p.numel() for name, p in voc_model.named_parameters() if name.startswith(prefix))

    assert sum(p.numel() for p in voc_model.parameters()) == 9_468_996
    assert count("base_net.") == 3_206_976
    assert count("extras.") == 2_459_520
    assert count("classification_headers.") == 3_194_100
    assert count("regression_headers.") == 608_400


def test_two_open_images_classes_plus_background_give_18_channel_classification_heads():
    model = mobilenet_v1_ssd(3)
    channels = [512, 1024, 512, 256, 256, 256]
    assert [tuple(h.weight.shape) for h in model.classification_headers] == [(18, c, 3, 3) for c in channels]


def test_priors_follow_the_module_but_stay_out_of_the_state_dict():
    model = mobilenet_v1_ssd(3, width_mult=0.25)
    assert "priors" not in model.state_dict()
    assert model.to(torch.float64).priors.dtype == torch.float64


def test_width_multiplier_scales_every_channel_count():
    model = mobilenet_v1_ssd(3, width_mult=0.25)
    assert model.base_net[0][0].weight.shape == (8, 3, 3, 3)  # 32 * 0.25
    assert model.base_net[13][3].weight.shape == (256, 256, 1, 1)  # 1024 * 0.25
    assert model.extras[0][2].weight.shape == (128, 64, 3, 3)  # 512 and 256, * 0.25
    assert [h.in_channels for h in model.regression_headers] == [128, 256, 128, 64, 64, 64]


def test_training_mode_returns_logits_and_locations_for_all_3000_priors_at_300_px():
    model = mobilenet_v1_ssd(21, width_mult=0.25).eval()
    with torch.no_grad():
        confidences, locations = model(torch.randn(1, 3, 300, 300))
    assert confidences.shape == (1, 3000, 21)
    assert locations.shape == (1, 3000, 4)


# feature maps: ceil(s/16), ceil(s/32), ..., ceil(s/512); 6 priors per cell
@pytest.mark.parametrize(
    "image_size, num_priors",
    [(160, 6 * (10**2 + 5**2 + 3**2 + 2**2 + 1 + 1)), (100, 6 * (7**2 + 4**2 + 2**2 + 1 + 1 + 1))],
)
def test_smaller_inputs_produce_as_many_outputs_as_the_prior_generator_gives(image_size, num_priors):
    model = mobilenet_v1_ssd(4, width_mult=0.25, image_size=image_size).eval()
    with torch.no_grad():
        confidences, locations = model(torch.randn(1, 3, image_size, image_size))
    generated = generate_ssd_priors(mobilenet_v1_specs(image_size), image_size)
    assert len(generated) == num_priors
    assert confidences.shape == (1, num_priors, 4)
    assert locations.shape == (1, num_priors, 4)
    assert torch.equal(model.priors, generated)


def test_test_mode_softmaxes_scores_and_decodes_zero_offsets_to_the_priors_corners():
    model = mobilenet_v1_ssd(5, width_mult=0.25, image_size=160, is_test=True).eval()
    for header in [*model.classification_headers, *model.regression_headers]:
        torch.nn.init.zeros_(header.weight)
        torch.nn.init.zeros_(header.bias)
    with torch.no_grad():
        scores, boxes = model(torch.randn(1, 3, 160, 160))
    assert torch.allclose(scores, torch.full_like(scores, 1 / 5))  # equal logits → uniform softmax
    assert torch.allclose(boxes[0], center_form_to_corner_form(model.priors))


def test_init_from_pretrained_ssd_keeps_the_body_and_reinitialises_heads_for_a_new_class_count():
    source = mobilenet_v1_ssd(21, width_mult=0.25)
    target = mobilenet_v1_ssd(3, width_mult=0.25)
    heads_before = target.classification_headers[0].weight.clone()
    target.init_from_pretrained_ssd(source.state_dict())
    assert torch.equal(target.base_net[5][3].weight, source.base_net[5][3].weight)
    assert torch.equal(target.extras[2][0].bias, source.extras[2][0].bias)
    assert target.classification_headers[0].weight.shape == (18, 128, 3, 3)
    assert not torch.equal(target.classification_headers[0].weight, heads_before)
    bound = math.sqrt(6 / (128 * 9 + 18 * 9))  # Xavier-uniform bound for a 3x3 conv, 128 → 18
    assert target.classification_headers[0].weight.abs().max() <= bound


def test_init_from_pretrained_ssd_rejects_a_checkpoint_with_foreign_keys():
    model = mobilenet_v1_ssd(3, width_mult=0.25)
    state = dict(model.state_dict(), **{"source_layer_add_ons.0.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="source_layer_add_ons"):
        model.init_from_pretrained_ssd(state)


def test_init_from_base_net_loads_the_base_net_strictly():
    donor = mobilenet_v1_ssd(21, width_mult=0.25)
    model = mobilenet_v1_ssd(3, width_mult=0.25)
    model.init_from_base_net(donor.base_net.state_dict())
    assert torch.equal(model.base_net[13][4].weight, donor.base_net[13][4].weight)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        model.init_from_base_net({**donor.base_net.state_dict(), "fc.weight": torch.zeros(1)})
