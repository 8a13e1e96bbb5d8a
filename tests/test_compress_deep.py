"""Deep Compression end to end: canonical Huffman codes, centroids trained under fixed pruning masks, and the
per-stage file whose decoded weights are the stage's weights bit for bit and whose bytes shrink stage by stage."""
import copy
import struct

import numpy as np
import pytest
import torch
from torch import nn

from dlperf.compress import codec, huffman
from dlperf.compress.codec import CodecError, formula_ratio, formula_table, measured_ratio, read, relative_gaps, write
from dlperf.compress.deep import bake, layer_codes, plain_state, share_layers, train_only_centroids
from dlperf.compress.pruning import make_permanent, prunable_layers, prune_global
from dlperf.models.cifar_resnet import CifarResNet, cifar_model
from dlperf.train.data import DeviceImages
from dlperf.train.engine import TrainConfig, train

SMALL = {"conv": 4, "linear": 3}     # the embedded config's index bits
PAPER = {"conv": 8, "linear": 5}     # Han et al.'s index bits, and their gap bits
STAGES = ("pruned", "shared", "huffman")


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` with random BatchNorm parameters and statistics, so every stored tensor carries information."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.normal_(generator=gen)
                module.bias.normal_(generator=gen)
                module.running_mean.normal_(generator=gen)
                module.running_var.uniform_(0.5, 2.0, generator=gen)
                module.num_batches_tracked.fill_(7)
    return model.eval()


def randomly_pruned(density: float, seed: int = 0) -> nn.Module:
    """A ResNet-20 whose conv and linear weights are kept at random with probability ``density``."""
    torch.manual_seed(seed)
    model = randomized(cifar_model("resnet20"), seed)
    with torch.no_grad():
        for _, module in prunable_layers(model):
            module.weight.mul_(torch.rand_like(module.weight) < density)   # leaves -0.0 where a negative weight was
    return model


def images(n: int = 8) -> torch.Tensor:
    return torch.randn((n, 3, 32, 32), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def stages():
    """The in-memory model of each stage: randomly pruned, then shared (its codebooks moved as training would)."""
    torch.set_num_threads(1)
    pruned = randomly_pruned(0.3)
    shared = share_layers(copy.deepcopy(pruned), SMALL, iterations=20)
    with torch.no_grad():
        for codebook in train_only_centroids(shared):
            codebook.add_(torch.randn_like(codebook) * 1e-3)
    return {"pruned": pruned, "shared": shared, "huffman": shared}


# ---- Huffman ---------------------------------------------------------------------------------------------------
def test_huffman_code_lengths_of_the_textbook_example():
    assert huffman.code_lengths(np.array([5, 9, 12, 13, 16, 45])).tolist() == [4, 4, 3, 3, 3, 1]


def test_a_huffman_stream_round_trips_within_one_bit_per_symbol_of_the_entropy():
    rng = np.random.default_rng(0)
    symbols = np.minimum(rng.geometric(0.3, 300_000) - 1, 255)
    counts = np.bincount(symbols, minlength=256)
    lengths = huffman.code_lengths(counts)
    data = huffman.encode(symbols, lengths)
    assert np.array_equal(huffman.decode(data, lengths, len(symbols)), symbols)
    p = counts[counts > 0] / len(symbols)
    entropy = -(p * np.log2(p)).sum() * len(symbols)
    assert entropy <= 8 * len(data) < entropy + len(symbols) + 8


def test_codes_are_limited_to_24_bits_and_stay_a_complete_prefix_code():
    fibonacci = [1, 1]
    while len(fibonacci) < 40:
        fibonacci.append(fibonacci[-1] + fibonacci[-2])
    lengths = huffman.code_lengths(np.array(fibonacci))   # unlimited, the rarest symbols would take 39 bits
    assert lengths.max() == huffman.MAX_CODE_BITS and (2.0 ** -lengths.astype(float)).sum() == 1.0
    symbols = np.random.default_rng(0).permutation(np.repeat(np.arange(40), 3))
    assert np.array_equal(huffman.decode(huffman.encode(symbols, lengths), lengths, len(symbols)), symbols)


def test_a_one_symbol_alphabet_codes_each_symbol_in_one_bit_and_an_empty_stream_in_no_bytes():
    lengths = huffman.code_lengths(np.array([0, 0, 9]))
    assert lengths.tolist() == [0, 0, 1]
    data = huffman.encode(np.full(9, 2), lengths)
    assert len(data) == 2 and huffman.decode(data, lengths, 9).tolist() == [2] * 9
    assert huffman.encode(np.zeros(0, dtype=np.int64), lengths) == b""
    assert huffman.decode(b"", lengths, 0).tolist() == []


# ---- trained quantization --------------------------------------------------------------------------------------
def test_each_centroid_gets_the_sum_of_its_weights_gradients():
    shared = share_layers(randomly_pruned(0.5).double(), SMALL, iterations=10).train()
    plain = bake(copy.deepcopy(shared))   # the same weights as ordinary parameters: each gets its own gradient
    for model in (shared, plain):
        model(images().double()).square().sum().backward()
    weights = dict(prunable_layers(plain))
    for name, code in layer_codes(shared).items():
        grad = weights[name].weight.grad
        expected = torch.zeros_like(code.codebook).index_add_(0, code.index[code.kept].long(), grad[code.kept])
        codebook_grad = dict(prunable_layers(shared))[name].weight_codebook.grad
        torch.testing.assert_close(codebook_grad, expected, rtol=1e-12, atol=1e-12)


def test_training_with_the_engine_moves_only_the_centroids_and_keeps_the_masks(tmp_path):
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 64)
    x = (rng.integers(0, 60, (64, 32, 32, 3)) + 20 * y[:, None, None, None]).astype(np.uint8)
    model = share_layers(randomly_pruned(0.4), SMALL, iterations=10)
    train_only_centroids(model)
    before = copy.deepcopy(model.state_dict())
    cfg = TrainConfig(epochs=1, batch_size=32, optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9,
                                                         "weight_decay": 5e-4})
    train(model, DeviceImages(x, y, "cpu"), {}, cfg, run_dir=tmp_path, state_dir=tmp_path / "state", run_name="deep")
    after = model.state_dict()
    moved = {key for key in before if not torch.equal(before[key], after[key])}
    statistics = {key for key in before if key.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert moved - statistics == {key for key in before if key.endswith("weight_codebook")}
    for name, module in prunable_layers(model):
        weight = plain_state(model)[f"{name}.weight"]
        assert torch.equal(weight != 0, before[f"{name}.weight_kept"]), name
        assert (weight[~module.weight_kept].view(torch.int32) == 0).all(), f"{name}: a pruned weight is not +0.0"


def test_a_baked_model_is_plain_takes_at_most_k_values_per_layer_and_computes_the_same(stages):
    shared = copy.deepcopy(stages["shared"])
    with torch.no_grad():
        expected = shared(images())
    baked = bake(shared)
    assert not any(module._forward_pre_hooks or module._forward_hooks for module in baked.modules())
    for name, module in prunable_layers(baked):
        assert isinstance(module.weight, nn.Parameter)
        k = 2 ** SMALL["linear" if isinstance(module, nn.Linear) else "conv"]
        assert len(module.weight.detach()[module.weight != 0].unique()) <= k, name
    plain = randomized(cifar_model("resnet20"))
    plain.load_state_dict(baked.state_dict())
    with torch.no_grad():
        assert torch.equal(plain(images()), expected)


@pytest.mark.parametrize("bits, message", [
    ({"conv": 0, "linear": 3}, r"bits for conv must be an integer in 1\.\.16 \(the widest field .*\), got 0"),
    ({"conv": 4, "linear": 17}, r"bits for linear must be an integer in 1\.\.16"),
    ({"conv": 4}, r"bits needs exactly the layer kinds \['conv', 'linear'\], got \['conv'\]"),
    ({"conv": 2.5, "linear": 3}, r"bits for conv must be an integer"),
])
def test_index_bits_outside_what_the_format_holds_are_rejected(bits, message):
    with pytest.raises(ValueError, match=message):
        share_layers(cifar_model("resnet8"), bits, iterations=5)


@pytest.mark.parametrize("gap_bits", [0, 17])
def test_gap_bits_outside_one_to_sixteen_are_rejected(gap_bits, tmp_path):
    with pytest.raises(ValueError, match=rf"gap_bits for conv must be an integer in 1\.\.16 .*, got {gap_bits}"):
        write(tmp_path / "m.dc", "pruned", cifar_model("resnet8"), gap_bits={"conv": gap_bits, "linear": 5})
    assert not list(tmp_path.iterdir())


def test_sharing_refuses_a_model_that_still_carries_pruning_masks():
    with pytest.raises(ValueError, match="layer conv1 still carries a mask"):
        share_layers(prune_global(cifar_model("resnet8"), 0.5), SMALL, iterations=5)


# ---- the file --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", STAGES)
def test_the_decoded_model_is_the_stage_model_bit_for_bit(stage, stages, tmp_path):
    model = stages[stage]
    path = write(tmp_path / f"{stage}.dc", stage, model, gap_bits=PAPER)
    state = read(path, cifar_model("resnet20"))
    expected = plain_state(model)
    assert list(state) == list(expected)
    for key, tensor in expected.items():
        canonical = tensor + 0 if tensor.is_floating_point() else tensor   # -0.0 reads back as +0.0
        assert state[key].dtype == tensor.dtype and torch.equal(
            state[key].reshape(-1).view(torch.uint8), canonical.reshape(-1).view(torch.uint8)), key
    decoded = randomized(cifar_model("resnet20"), seed=5)
    decoded.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(decoded.eval()(images()), model(images()))


def test_each_stage_is_smaller_on_disk_and_deep_compressions_formula_is_an_upper_bound(tmp_path):
    torch.manual_seed(0)
    pruned = make_permanent(prune_global(randomized(cifar_model("resnet20")), 0.8))
    shared = share_layers(copy.deepcopy(pruned), SMALL, iterations=20)
    dense = tmp_path / "dense.pt"
    torch.save(pruned.state_dict(), dense)
    sizes = {stage: write(tmp_path / f"{stage}.dc", stage, pruned if stage == "pruned" else shared,
                          gap_bits=PAPER).stat().st_size for stage in STAGES}
    assert dense.stat().st_size > sizes["pruned"] > sizes["shared"] > sizes["huffman"]
    table = formula_table(shared, PAPER)
    for stage in STAGES:
        assert 1 < measured_ratio(dense, tmp_path / f"{stage}.dc") < formula_ratio(table, stage), stage


def test_the_formula_counts_nonzero_weights_index_and_gap_bits_and_the_codebook():
    layer = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.0, 0.5, 0.0, -0.5], [1.0, 0.0, 0.0, 0.0]]))
    table = formula_table(share_layers(nn.Sequential(layer), {"conv": 8, "linear": 2}, 10), {"conv": 8, "linear": 5})
    row = table.set_index("layer").loc["0"]
    assert (row.params, row.nonzero, row.dense, row.pruned, row.shared) == (8, 3, 256, 3 * 37, 3 * 7 + 4 * 32)
    # gaps (1, 1, 0) take a bit each; indices (0, 2, 3), one of each, codes of 1, 2 and 2 bits
    assert row.huffman == pytest.approx(3 * (1 + 5 / 3) + 4 * 32)
    assert formula_ratio(table, "shared") == 256 / 149


def test_a_gap_beyond_the_field_inserts_padding_entries_on_pruned_positions(tmp_path):
    kept = np.zeros(100, dtype=bool)
    kept[[0, 31, 63, 99]] = True                     # distances 1, 31, 32, 36 with gap_bits 5 (M = 31)
    gaps, slots = relative_gaps(kept, 5)
    assert gaps.tolist() == [0, 30, 31, 0, 31, 4] and slots.tolist() == [0, 1, 3, 5]
    layer = nn.Linear(100, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.where(torch.from_numpy(kept), torch.arange(1.0, 101.0), 0.0)[None])
    model = nn.Sequential(layer)
    for stage, stored in (("pruned", model), ("shared", share_layers(copy.deepcopy(model), SMALL, 5))):
        path = write(tmp_path / f"{stage}.dc", stage, stored, gap_bits={"conv": 8, "linear": 5})
        assert torch.equal(read(path, model)["0.weight"], plain_state(stored)["0.weight"]), stage


@pytest.fixture()
def huffman_file(stages, tmp_path):
    return write(tmp_path / "m.dc", "huffman", stages["huffman"], gap_bits=PAPER)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:100] + bytes([b[100] ^ 0x10]) + b[101:], lambda n: "checksum mismatch: the payload's CRC-32 is"),
    (lambda b: b[:-10], lambda n: f"truncated at byte {n - 10}: the header announces {n} bytes"),
    (lambda b: b[:20], lambda n: "truncated at byte 20: the preamble takes 24 bytes"),
    (lambda b: b"NOTDEEP!" + b[8:], lambda n: "bad magic b'NOTDEEP!': not a Deep Compression file"),
    (lambda b: b[:8] + struct.pack("<H", 2) + b[10:],
     lambda n: r"format version 2 is not supported \(this reader reads 1\)"),
    (lambda b: b + b"\0", lambda n: f"1 bytes after the payload's end at byte {n}"),
], ids=["flipped bit", "truncated payload", "truncated preamble", "bad magic", "newer version", "trailing byte"])
def test_a_damaged_file_is_refused_with_what_is_wrong_and_where(damage, message, huffman_file):
    blob = huffman_file.read_bytes()
    huffman_file.write_bytes(damage(blob))
    with pytest.raises(CodecError, match=f"{huffman_file}: {message(len(blob))}"):
        read(huffman_file, cifar_model("resnet20"))


@pytest.mark.parametrize("other, message", [
    (lambda: CifarResNet(20, widths=(8, 16, 32)),
     r"layer conv1\.weight: shape \[16, 3, 3, 3\] in the file, \[8, 3, 3, 3\] in the model"),
    (lambda: cifar_model("resnet8"), r"layer1\.1\.conv1\.weight is in the file but not in the model"),
    (lambda: cifar_model("resnet32"), r"layer1\.3\.conv1\.weight is in the model but not in the file"),
], ids=["narrower", "shallower", "deeper"])
def test_a_file_read_into_another_architecture_names_the_first_layer_that_differs(other, message, huffman_file):
    with pytest.raises(CodecError, match=message):
        read(huffman_file, other())


def test_stage_names_are_checked(stages, tmp_path):
    with pytest.raises(ValueError, match="unknown stage 'quantized'"):
        write(tmp_path / "m.dc", "quantized", stages["shared"], gap_bits=PAPER)
    with pytest.raises(ValueError, match="stage shared stores codebooks, but layer conv1 has none"):
        write(tmp_path / "m.dc", "shared", stages["pruned"], gap_bits=PAPER)
    assert codec.STAGES == STAGES
