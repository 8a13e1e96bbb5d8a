"""The Deep Compression file: one file per stage (pruned, shared, huffman), its bytes the size the study reports.

Han et al. (ICLR 2016) store a pruned layer as (relative index, value) pairs (§2), then replace each value by a
``bits``-bit index into the layer's codebook (§3), then Huffman-code both streams (§4). :func:`write` writes a
model as the file of one stage, :func:`read` decodes it into a state dict for the model's architecture; the decoded
weights equal the stage's in-memory weights (a pruned weight reads back +0.0; torch's ``prune.remove`` leaves -0.0
where a negative weight was pruned: equal as a number, and no product or sum in the network differs).

Layout (all integers little-endian; bit fields most significant bit first, each field's bits padded to a byte):

* **preamble**, 24 bytes: magic ``b"DLPFDEEP"`` (8), format version u16 (1), stage u8 (0 pruned, 1 shared,
  2 huffman), a zero byte, payload length u64, CRC-32 (``zlib.crc32``) of the payload u32. The payload is the rest.
* **architecture**: u32 tensor count, then per tensor of the state dict, in order: u16 name length, the name in
  UTF-8, u8 dtype code (:data:`DTYPES`), u8 dimension count, a u32 per dimension, u8 ``coded`` (1 for the weight
  of a conv or linear layer, 0 for any other tensor).
* **tensors**, in the same order. A tensor with ``coded`` 0 (biases, BatchNorm weights and running statistics) is
  its raw bytes, dense. A coded weight is a stream of E entries, flattened in row-major order, each with a gap
  (``gap_bits`` bits): an entry with gap ``g < M = 2**gap_bits - 1`` lies ``g + 1`` positions after the previous
  one (the first after position -1); when the distance to the next nonzero weight exceeds ``M``, padding entries
  with gap ``M`` are inserted, each ``M`` positions on, on a pruned position: the paper's filler zero. A padding
  entry still has a value slot (0), as in the paper, so the file pays what Han et al.'s format pays. By stage:

  - pruned: u8 gap_bits, u32 E, the E gaps (``ceil(E·gap_bits / 8)`` bytes), E values in the weight's dtype;
  - shared: u8 gap_bits, u8 bits, u32 E, the codebook (``2**bits`` values in the weight's dtype), the gaps,
    the E codebook indices (``ceil(E·bits / 8)`` bytes);
  - huffman: u8 gap_bits, u8 bits, u32 E, the codebook, the gap code table, the index code table, u32 byte
    count and the Huffman-coded gaps, u32 byte count and the Huffman-coded indices. A code table is u16 n, then n
    code lengths of 5 bits (0 for a symbol that does not occur; lengths are at most 24): symbols 0..n-1 of the
    canonical code (:mod:`dlperf.compress.huffman`), n one past the largest symbol used. Tables are per layer:
    layers are pruned to different densities, so their gap distributions differ.

:func:`formula_table` gives, per layer, the bits Deep Compression's accounting gives each stage (Han et al.'s
Table 1 and eq. 1): nonzero weights × (value or index bits + gap bits), plus ``k`` codebook values, with Huffman
at the mean code length of the layer's streams. Its ratio (:func:`formula_ratio`) exceeds the measured one
(:func:`measured_ratio`: dense checkpoint bytes over file bytes) because the file also holds the header and the
tensor names and shapes, every non-weight tensor dense, the padding entries, each field padded to a whole byte,
the Huffman tables, and (at the huffman stage) each stream's byte count; the dense checkpoint has pickle overhead
of its own.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from dlperf.atomic import atomic_write
from dlperf.compress import huffman
from dlperf.compress.deep import check_bits, layer_codes, layer_kind, plain_state
from dlperf.compress.pruning import prunable_layers

MAGIC = b"DLPFDEEP"
VERSION = 1
STAGES = ("pruned", "shared", "huffman")
PREAMBLE = struct.Struct("<8sHBBQI")
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
          torch.int8, torch.uint8, torch.bool)
LENGTH_BITS = 5   # a code length of at most huffman.MAX_CODE_BITS (24) fits


class CodecError(ValueError):
    """A file that is not a valid Deep Compression file, or not one for the given model."""


# ---- bit fields and the sparse stream --------------------------------------------------------------------------
def pack_bits(values: np.ndarray, width: int) -> bytes:
    """Unsigned ``values`` as ``width``-bit fields, most significant bit first, zero-padded to a whole byte."""
    values = np.asarray(values, dtype=np.uint32)
    bits = np.empty((len(values), width), dtype=np.uint8)
    for j in range(width):
        bits[:, j] = (values >> (width - 1 - j)) & 1
    return np.packbits(bits.ravel()).tobytes()


def unpack_bits(data: bytes, width: int, count: int) -> np.ndarray:
    """The ``count`` ``width``-bit fields at the start of ``data`` (int64)."""
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count * width).reshape(count, width)
    values = np.zeros(count, dtype=np.int64)
    for j in range(width):
        values = (values << 1) | bits[:, j]
    return values


def relative_gaps(kept: np.ndarray, gap_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``(gaps, slots)``: the gap of every entry of the stream for the flat mask ``kept`` (padding entries
    included), and which entries are the kept weights, in order (see the module docstring for the rule)."""
    most = (1 << gap_bits) - 1
    positions = np.flatnonzero(kept)
    distance = np.diff(positions, prepend=-1)
    padding = (distance - 1) // most                       # entries of gap M needed before each kept weight
    slots = np.arange(len(positions)) + np.cumsum(padding)
    gaps = np.full(len(positions) + int(padding.sum()), most, dtype=np.int64)
    gaps[slots] = distance - 1 - padding * most
    return gaps, slots


def positions_of(gaps: np.ndarray, gap_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``(positions, real)``: the flat position of every entry, and which entries are not padding."""
    most = (1 << gap_bits) - 1
    real = gaps != most
    return np.cumsum(np.where(real, gaps + 1, most)) - 1, real


# ---- writing ---------------------------------------------------------------------------------------------------
def tensor_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def index_width(codebook: torch.Tensor) -> int:
    k = len(codebook)
    if k < 2 or k & (k - 1) or k > 1 << 16:
        raise ValueError(f"a codebook of {k} values cannot be stored: k must be 2**bits with bits in 1..16")
    return k.bit_length() - 1


def code_table(lengths: np.ndarray) -> bytes:
    used = np.flatnonzero(lengths)
    n = int(used[-1]) + 1 if len(used) else 0
    return struct.pack("<H", n) + pack_bits(lengths[:n], LENGTH_BITS)


def coded_layer(stage: str, weight: torch.Tensor, kept: torch.Tensor, code, gap_bits: int) -> bytes:
    """The bytes of one conv or linear weight at ``stage`` (``code``: its LayerCode, None for a plain layer)."""
    flat_kept = kept.detach().cpu().reshape(-1).numpy()
    gaps, slots = relative_gaps(flat_kept, gap_bits)
    if stage == "pruned":
        values = torch.zeros(len(gaps), dtype=weight.dtype)
        values[torch.from_numpy(slots)] = weight.detach().cpu().reshape(-1)[torch.from_numpy(flat_kept)]
        return struct.pack("<BI", gap_bits, len(gaps)) + pack_bits(gaps, gap_bits) + tensor_bytes(values)
    bits = index_width(code.codebook)
    index = np.zeros(len(gaps), dtype=np.int64)
    index[slots] = code.index.cpu().reshape(-1).numpy()[flat_kept]
    head = struct.pack("<BBI", gap_bits, bits, len(gaps)) + tensor_bytes(code.codebook)
    if stage == "shared":
        return head + pack_bits(gaps, gap_bits) + pack_bits(index, bits)
    gap_lengths = huffman.code_lengths(np.bincount(gaps, minlength=1 << gap_bits))
    index_lengths = huffman.code_lengths(np.bincount(index, minlength=1 << bits))
    gap_stream, index_stream = huffman.encode(gaps, gap_lengths), huffman.encode(index, index_lengths)
    return (head + code_table(gap_lengths) + code_table(index_lengths) + struct.pack("<I", len(gap_stream))
            + gap_stream + struct.pack("<I", len(index_stream)) + index_stream)


def encode(stage: str, model: nn.Module, gap_bits: Mapping[str, int]) -> bytes:
    """The whole file of ``model`` at ``stage``. The shared and huffman stages need a model whose layers carry
    codebooks (:func:`dlperf.compress.deep.share_layers`); the pruned stage takes a plain pruned model (a shared
    one is stored with its codebook values) and stores its nonzero weights."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: expected one of {', '.join(STAGES)}")
    gap_bits = check_bits(gap_bits, "gap_bits")
    codes = layer_codes(model)
    layers = {f"{name}.weight" if name else "weight": (name, module) for name, module in prunable_layers(model)}
    if stage != "pruned" and (plain := [name for name, _ in layers.values() if name not in codes]):
        raise ValueError(f"stage {stage} stores codebooks, but layer {plain[0]} has none: call share_layers first")
    state = plain_state(model)
    arch, data = [struct.pack("<I", len(state))], []
    for key, tensor in state.items():
        name = key.encode()
        arch.append(struct.pack(f"<H{len(name)}sBB", len(name), name, DTYPES.index(tensor.dtype), tensor.dim())
                    + struct.pack(f"<{tensor.dim()}I", *tensor.shape) + struct.pack("<B", key in layers))
        if key in layers:
            layer, module = layers[key]
            code = codes.get(layer)
            kept = tensor != 0 if code is None else code.kept
            data.append(coded_layer(stage, tensor, kept, code, gap_bits[layer_kind(module)]))
        else:
            data.append(tensor_bytes(tensor))
    payload = b"".join(arch + data)
    return PREAMBLE.pack(MAGIC, VERSION, STAGES.index(stage), 0, len(payload), zlib.crc32(payload)) + payload


def write(path: str | os.PathLike, stage: str, model: nn.Module, *, gap_bits: Mapping[str, int]) -> Path:
    """Write ``model`` as the ``stage`` file at ``path`` atomically (a temporary sibling, then ``os.replace``);
    ``gap_bits`` by layer kind (Han et al.: conv 8, linear 5), each in 1..16."""
    blob = encode(stage, model, gap_bits)
    with atomic_write(path, "wb") as handle:
        handle.write(blob)
    return Path(path)


# ---- reading ---------------------------------------------------------------------------------------------------
class Cursor:
    """Reads a file's bytes front to back; running past the end is a truncation, reported with the byte."""

    def __init__(self, blob: bytes, start: int, path):
        self.blob, self.at, self.path = blob, start, path

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.blob):
            raise CodecError(f"{self.path}: truncated at byte {len(self.blob)}: {n} more bytes needed at byte "
                             f"{self.at}")
        self.at += n
        return self.blob[self.at - n:self.at]

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(f"<{fmt}", self.take(struct.calcsize(f"<{fmt}")))

    def fields(self, width: int, count: int) -> np.ndarray:
        return unpack_bits(self.take((width * count + 7) // 8), width, count)

    def tensor(self, dtype: torch.dtype, count: int) -> torch.Tensor:
        raw = self.take(count * torch.empty((), dtype=dtype).element_size())
        return torch.frombuffer(bytearray(raw), dtype=dtype) if count else torch.zeros(0, dtype=dtype)

    def code_table(self) -> np.ndarray:
        (n,) = self.unpack("H")
        return self.fields(LENGTH_BITS, n).astype(np.uint8)


def check_preamble(blob: bytes, path) -> tuple[str, int]:
    """The stage and where the payload starts, after checking magic, version, length and checksum."""
    if len(blob) < PREAMBLE.size:
        raise CodecError(f"{path}: truncated at byte {len(blob)}: the preamble takes {PREAMBLE.size} bytes")
    magic, version, stage, _, length, crc = PREAMBLE.unpack_from(blob)
    if magic != MAGIC:
        raise CodecError(f"{path}: bad magic {magic!r}: not a Deep Compression file (expected {MAGIC!r})")
    if version != VERSION:
        raise CodecError(f"{path}: format version {version} is not supported (this reader reads {VERSION})")
    if stage >= len(STAGES):
        raise CodecError(f"{path}: unknown stage code {stage} (expected 0..{len(STAGES) - 1})")
    end = PREAMBLE.size + length
    if len(blob) < end:
        raise CodecError(f"{path}: truncated at byte {len(blob)}: the header announces {end} bytes")
    if len(blob) > end:
        raise CodecError(f"{path}: {len(blob) - end} bytes after the payload's end at byte {end}")
    if (found := zlib.crc32(blob[PREAMBLE.size:])) != crc:
        raise CodecError(f"{path}: checksum mismatch: the payload's CRC-32 is {found:08x}, the header says {crc:08x}")
    return STAGES[stage], PREAMBLE.size


def check_architecture(arch: dict[str, tuple[torch.dtype, tuple[int, ...], bool]], model: nn.Module, path) -> None:
    """Raise naming the first tensor (in the model's order) whose name, shape or dtype the file does not match."""
    expected = plain_state(model)
    for key, tensor in expected.items():
        if key not in arch:
            raise CodecError(f"{path}: {key} is in the model but not in the file")
        dtype, shape, _ = arch[key]
        if shape != tuple(tensor.shape):
            raise CodecError(f"{path}: layer {key}: shape {list(shape)} in the file, {list(tensor.shape)} in the "
                             "model")
        if dtype != tensor.dtype:
            raise CodecError(f"{path}: layer {key}: dtype {dtype} in the file, {tensor.dtype} in the model")
    extra = [key for key in arch if key not in expected]
    if extra:
        raise CodecError(f"{path}: {extra[0]} is in the file but not in the model")


def decode_layer(stage: str, cursor: Cursor, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    if stage == "pruned":
        gap_bits, entries = cursor.unpack("BI")
        gaps = cursor.fields(gap_bits, entries)
        values = cursor.tensor(dtype, entries)
    else:
        gap_bits, bits, entries = cursor.unpack("BBI")
        codebook = cursor.tensor(dtype, 1 << bits)
        if stage == "shared":
            gaps, index = cursor.fields(gap_bits, entries), cursor.fields(bits, entries)
        else:
            gap_lengths, index_lengths = cursor.code_table(), cursor.code_table()
            gaps = huffman.decode(cursor.take(*cursor.unpack("I")), gap_lengths, entries)
            index = huffman.decode(cursor.take(*cursor.unpack("I")), index_lengths, entries)
        values = codebook[torch.from_numpy(index)]
    positions, real = positions_of(gaps, gap_bits)
    weight = torch.zeros(int(np.prod(shape)), dtype=dtype)
    if len(positions) and positions[-1] >= weight.numel():
        raise CodecError(f"{cursor.path}: a layer's entries run past its {weight.numel()} weights")
    weight[torch.from_numpy(positions[real])] = values[torch.from_numpy(real)]
    return weight.reshape(shape)


def read(path: str | os.PathLike, model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict stored in the file at ``path``, for ``model``'s architecture (plain weights, loadable with
    ``model.load_state_dict``); a :class:`CodecError` names the file and what is wrong with it."""
    blob = Path(path).read_bytes()
    stage, start = check_preamble(blob, path)
    cursor = Cursor(blob, start, path)
    arch = {}
    for _ in range(*cursor.unpack("I")):
        name = cursor.take(*cursor.unpack("H")).decode()
        dtype_code, ndim = cursor.unpack("BB")
        if dtype_code >= len(DTYPES):
            raise CodecError(f"{path}: {name}: unknown dtype code {dtype_code}")
        arch[name] = (DTYPES[dtype_code], cursor.unpack(f"{ndim}I"), bool(*cursor.unpack("B")))
    check_architecture(arch, model, path)
    state = {}
    for name, (dtype, shape, coded) in arch.items():
        state[name] = (decode_layer(stage, cursor, dtype, shape) if coded
                       else cursor.tensor(dtype, int(np.prod(shape))).reshape(shape))
    return state


# ---- Deep Compression's accounting beside the file's bytes -----------------------------------------------------
def formula_table(model: nn.Module, gap_bits: Mapping[str, int]) -> pd.DataFrame:
    """Per shared layer of ``model`` (and a last row ``all``): ``layer, kind, params, nonzero, bits, gap_bits`` and
    the bits Deep Compression's accounting gives it dense (``dense``) and at each stage (``pruned``, ``shared``,
    ``huffman``; see the module docstring)."""
    gap_bits = check_bits(gap_bits, "gap_bits")
    modules = dict(prunable_layers(model))
    rows = []
    for name, code in layer_codes(model).items():
        kind = layer_kind(modules[name])
        value_bits, bits, gap = code.codebook.element_size() * 8, index_width(code.codebook), gap_bits[kind]
        flat_kept = code.kept.cpu().reshape(-1).numpy()
        nonzero = int(flat_kept.sum())
        gaps, slots = relative_gaps(flat_kept, gap)
        index = np.zeros(len(gaps), dtype=np.int64)
        index[slots] = code.index.cpu().reshape(-1).numpy()[flat_kept]
        coded = sum(mean_code_length(stream, 1 << width) for stream, width in ((gaps, gap), (index, bits)))
        codebook = len(code.codebook) * value_bits
        rows.append({"layer": name, "kind": kind, "params": flat_kept.size, "nonzero": nonzero, "bits": bits,
                     "gap_bits": gap, "dense": flat_kept.size * value_bits, "pruned": nonzero * (value_bits + gap),
                     "shared": nonzero * (bits + gap) + codebook, "huffman": nonzero * coded + codebook})
    table = pd.DataFrame(rows)
    total = table.drop(columns=["layer", "kind", "bits", "gap_bits"]).sum()
    table.loc[len(table)] = {"layer": "all", "kind": "", "bits": None, "gap_bits": None, **total.to_dict()}
    return table


def mean_code_length(stream: np.ndarray, alphabet: int) -> float:
    """Mean Huffman code length, in bits, of the symbols of ``stream`` under the code the file builds for it."""
    counts = np.bincount(stream, minlength=alphabet)
    return float(counts @ huffman.code_lengths(counts) / max(len(stream), 1))


def formula_ratio(table: pd.DataFrame, stage: str) -> float:
    """Deep Compression's R for ``stage`` over the layers of a :func:`formula_table`: dense bits over the stage's."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: expected one of {', '.join(STAGES)}")
    total = table.set_index("layer").loc["all"]
    return float(total["dense"] / total[stage])


def measured_ratio(dense_path: str | os.PathLike, path: str | os.PathLike) -> float:
    """The compression ratio on disk: the dense FP32 checkpoint's bytes over the stage file's."""
    return os.stat(dense_path).st_size / os.stat(path).st_size
