"""SSD prior (default) boxes, as pytorch-ssd's ``generate_ssd_priors``, and the specs that place them.

A spec lists, per feature map the heads read, its size, the stride in pixels between its cells
(``shrinkage``), the box sizes in pixels and the aspect ratios. Every cell of a map gets
``2 + 2 * len(aspect_ratios)`` priors, in this order: the small square (``min``), the large square
(``sqrt(min * max)``), then for each ratio r the small square stretched to ``(w*sqrt(r), h/sqrt(r))`` and
``(w/sqrt(r), h*sqrt(r))``. Cells are visited row-major, maps in head order, which is the order in which
the SSD heads flatten their outputs; priors and head outputs must agree index by index.

At 300 px the published MobileNetV1-SSD spec applies (3000 priors). For another input size,
:func:`mobilenet_v1_specs` derives a spec by one rule that reproduces the published one at 300 px:

* feature-map sizes follow from the network's arithmetic: every stride-2 3x3 convolution with padding 1
  maps n pixels to ceil(n / 2), so the six maps are ceil(s/16), ceil(s/32), ..., ceil(s/512);
* the three maps with a nominal stride of 16, 32, 64 px use that stride as shrinkage (at 300 px the grid
  overhangs the image a little, 19 * 16 = 304, which is why pytorch-ssd clamps); the three small extra
  maps use ``s / feature_map_size`` so that their few cells tile the image (a nominal stride would put a
  1x1 map's centre at 256/300 instead of the middle), which gives pytorch-ssd's 100, 150, 300;
* box sizes keep their share of the image: the published ones (0.20 ... 0.95 of the side for ``min``)
  times ``s / 300``.

Priors are in centre form ``[cx, cy, w, h]`` relative to the image, clamped to [0, 1] as pytorch-ssd does.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch

PUBLISHED_IMAGE_SIZE = 300
FIRST_MAP_HALVINGS = 4  # stride-2 convolutions before the first head (base-net layer 11: stride 16)
LATER_MAPS = 5  # one more stride-2 base-net layer (13), then the four stride-2 extra blocks
NOMINAL_STRIDE_MAPS = 3  # maps whose shrinkage is the nominal stride; the rest tile the image


class SSDBoxSizes(NamedTuple):
    """Prior sizes in input pixels: ``min`` is the small square's side, ``sqrt(min * max)`` the large one's."""

    min: float
    max: float


class SSDSpec(NamedTuple):
    """Where and how large the priors of one feature map are (pytorch-ssd's ``SSDSpec``)."""

    feature_map_size: int
    shrinkage: float
    box_sizes: SSDBoxSizes
    aspect_ratios: tuple[int, ...]


MOBILENET_V1_SPECS: tuple[SSDSpec, ...] = (
    SSDSpec(19, 16, SSDBoxSizes(60, 105), (2, 3)),
    SSDSpec(10, 32, SSDBoxSizes(105, 150), (2, 3)),
    SSDSpec(5, 64, SSDBoxSizes(150, 195), (2, 3)),
    SSDSpec(3, 100, SSDBoxSizes(195, 240), (2, 3)),
    SSDSpec(2, 150, SSDBoxSizes(240, 285), (2, 3)),
    SSDSpec(1, 300, SSDBoxSizes(285, 330), (2, 3)),
)
"""pytorch-ssd's ``mobilenetv1_ssd_config.specs`` for 300-px inputs."""


def priors_per_location(spec: SSDSpec) -> int:
    """Priors per feature-map cell: two squares plus two rectangles per aspect ratio."""
    return 2 + 2 * len(spec.aspect_ratios)


def generate_ssd_priors(specs: Sequence[SSDSpec], image_size: int, clamp: bool = True) -> torch.Tensor:
    """All priors of ``specs`` as a float32 ``[num_priors, 4]`` tensor in centre form, relative to the image.

    Computed in float64 and rounded once to float32, which reproduces pytorch-ssd's values (it builds a
    Python list of floats and converts it with ``torch.tensor``).
    """
    per_map = []
    for spec in specs:
        scale = image_size / spec.shrinkage
        steps = (torch.arange(spec.feature_map_size, dtype=torch.float64) + 0.5) / scale
        cy, cx = torch.meshgrid(steps, steps, indexing="ij")  # row j, column i
        small = spec.box_sizes.min / image_size
        large = math.sqrt(spec.box_sizes.min * spec.box_sizes.max) / image_size
        sizes = [(small, small), (large, large)]
        for ratio in spec.aspect_ratios:
            root = math.sqrt(ratio)
            sizes += [(small * root, small / root), (small / root, small * root)]
        wh = torch.tensor(sizes, dtype=torch.float64)
        centres = torch.stack([cx.reshape(-1), cy.reshape(-1)], dim=1)
        cells = torch.cat(
            [
                centres[:, None, :].expand(-1, len(sizes), 2),
                wh[None, :, :].expand(centres.shape[0], -1, 2),
            ],
            dim=2,
        )
        per_map.append(cells.reshape(-1, 4))
    priors = torch.cat(per_map).to(torch.float32)
    return priors.clamp(0.0, 1.0) if clamp else priors


def mobilenet_v1_feature_map_sizes(image_size: int) -> tuple[int, ...]:
    """Sizes of the six maps MobileNetV1-SSD's heads read for a square ``image_size`` input.

    Each stride-2 3x3 convolution with padding 1 maps n to ``(n - 1) // 2 + 1`` = ceil(n / 2): four of them
    reach the stride-16 map, one more the stride-32 map, and each extra block halves again.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    n = image_size
    for _ in range(FIRST_MAP_HALVINGS):
        n = (n - 1) // 2 + 1
    sizes = [n]
    for _ in range(LATER_MAPS):
        n = (n - 1) // 2 + 1
        sizes.append(n)
    return tuple(sizes)


def mobilenet_v1_specs(image_size: int = PUBLISHED_IMAGE_SIZE) -> tuple[SSDSpec, ...]:
    """The MobileNetV1-SSD spec for ``image_size``; equals :data:`MOBILENET_V1_SPECS` at 300 px.

    See the module docstring for the rule and why it takes this form.
    """
    scale = image_size / PUBLISHED_IMAGE_SIZE
    specs = []
    for k, (fm, published) in enumerate(zip(mobilenet_v1_feature_map_sizes(image_size), MOBILENET_V1_SPECS)):
        shrinkage = 16 * 2**k if k < NOMINAL_STRIDE_MAPS else image_size / fm
        sizes = SSDBoxSizes(published.box_sizes.min * scale, published.box_sizes.max * scale)
        specs.append(SSDSpec(fm, shrinkage, sizes, published.aspect_ratios))
    return tuple(specs)
