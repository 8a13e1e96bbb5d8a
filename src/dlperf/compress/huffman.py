"""Canonical, length-limited Huffman coding of numpy symbol arrays: the last stage of Deep Compression (Han et al.,
ICLR 2016, §4), applied to codebook indices and sparse-index gaps.

A code is given by its **code lengths** alone (one per symbol of the alphabet, 0 for a symbol that never occurs):
the canonical code assigns consecutive integers to the symbols sorted by (length, symbol), as DEFLATE does, so a file
stores the lengths and the reader rebuilds the same codes. Lengths are capped at :data:`MAX_CODE_BITS` (24) so that
a table entry fits a fixed field and a decoder window fits a 32-bit word; a cap that binds is met by the JPEG
standard's adjustment (ITU T.81 Annex K.3), which moves the deepest codes up while keeping the Kraft sum at 1. It
seldom binds and costs little when it does: a code longer than 24 bits needs a symbol rarer than one in F(27) =
196 418 (Fibonacci-distributed counts are Huffman's worst case).

Bits are written most significant first, codes back to back, the last byte padded with zeros. :func:`encode` is
vectorised (each symbol's code is spread into its bits with ``np.repeat``); :func:`decode` is table-driven: the
code starting at *every* bit position is looked up at once (a ``searchsorted`` of 24-bit windows against the
left-aligned canonical codes), then one pass hops from code to code, chunk by chunk. Both handle ~10 M symbols
(VGG-16's nonzero weights after 90 % pruning) in seconds.
"""
from __future__ import annotations

import heapq

import numpy as np

MAX_CODE_BITS = 24
CHUNK = 1 << 20   # symbols (encode) or bit positions (decode) per vectorised step: bounds the temporaries


def code_lengths(counts: np.ndarray, limit: int = MAX_CODE_BITS) -> np.ndarray:
    """Huffman code lengths (uint8, 0 for symbols of count 0) of the alphabet whose symbol ``i`` occurs
    ``counts[i]`` times, no longer than ``limit`` bits. A lone symbol gets one bit (a code needs at least one)."""
    counts = np.asarray(counts, dtype=np.int64)
    used = np.flatnonzero(counts > 0)
    lengths = np.zeros(len(counts), dtype=np.uint8)
    if len(used) > 1 << limit:
        raise ValueError(f"{len(used)} symbols do not fit codes of at most {limit} bits")
    if len(used) == 1:
        lengths[used] = 1
    if len(used) <= 1:
        return lengths
    depth = _tree_depths(counts[used])
    per_length = np.bincount(depth, minlength=limit + 1).tolist()
    for deep in range(len(per_length) - 1, limit, -1):   # Annex K.3: lift the deepest pairs until none is too long
        while per_length[deep] > 0:
            shallow = deep - 2
            while per_length[shallow] == 0:
                shallow -= 1
            per_length[deep] -= 2
            per_length[deep - 1] += 1
            per_length[shallow + 1] += 2
            per_length[shallow] -= 1
    by_count = used[np.lexsort((used, -counts[used]))]   # most frequent first: they take the shortest codes
    lengths[by_count] = np.repeat(np.arange(len(per_length)), per_length)
    return lengths


def _tree_depths(counts: np.ndarray) -> np.ndarray:
    """Leaf depths of a Huffman tree over ``counts`` (all positive), by merging the two lightest nodes."""
    n = len(counts)
    parent = np.zeros(2 * n - 1, dtype=np.int64)
    heap = [(int(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    for node in range(n, 2 * n - 1):
        (c1, a), (c2, b) = heapq.heappop(heap), heapq.heappop(heap)
        parent[a] = parent[b] = node
        heapq.heappush(heap, (c1 + c2, node))
    depth = np.zeros(2 * n - 1, dtype=np.int64)
    for node in range(2 * n - 3, -1, -1):   # parents are created after their children: walk down from the root
        depth[node] = depth[parent[node]] + 1
    return depth[:n]


def canonical_codes(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(order, codes)``: the used symbols sorted by (length, symbol), and their canonical codes (uint32)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.flatnonzero(lengths)
    order = order[np.lexsort((order, lengths[order]))]
    sorted_lengths = lengths[order]
    codes = np.zeros(len(order), dtype=np.int64)
    for i in range(1, len(order)):   # one step per used symbol of the alphabet (at most 2**16), not per coded symbol
        codes[i] = (codes[i - 1] + 1) << (sorted_lengths[i] - sorted_lengths[i - 1])
    if len(order) and codes[-1] >= 1 << sorted_lengths[-1]:
        raise ValueError("code lengths violate the Kraft inequality: no prefix code has them")
    return order, codes.astype(np.uint32)


def encode(symbols: np.ndarray, lengths: np.ndarray) -> bytes:
    """The bit string of ``symbols`` under the canonical code of ``lengths``, zero-padded to whole bytes."""
    symbols = np.asarray(symbols, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(symbols) and (symbols.min() < 0 or symbols.max() >= len(lengths) or not lengths[symbols].all()):
        raise ValueError("a symbol to encode has no code (outside the alphabet or of count 0 in the table)")
    order, sorted_codes = canonical_codes(lengths)
    code = np.zeros(len(lengths), dtype=np.int64)
    code[order] = sorted_codes
    bits = []
    for start in range(0, len(symbols), CHUNK):
        chunk = symbols[start:start + CHUNK]
        width, value = lengths[chunk], code[chunk]
        owner = np.repeat(np.arange(len(chunk)), width)
        place = np.arange(len(owner)) - np.repeat(np.cumsum(width) - width, width)   # bit's place in its code
        bits.append(((value[owner] >> (width[owner] - 1 - place)) & 1).astype(np.uint8))
    return np.packbits(np.concatenate(bits)).tobytes() if bits else b""


def decode(data: bytes, lengths: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` symbols (int64) of the bit string ``data`` under the canonical code of ``lengths``."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    order, codes = canonical_codes(lengths)
    if not len(order):
        raise ValueError(f"{count} symbols to decode but the code table is empty")
    sorted_lengths = np.asarray(lengths, dtype=np.int64)[order]
    window = int(sorted_lengths.max())
    starts = codes.astype(np.int64) << (window - sorted_lengths)   # left-aligned: increasing, as canonical codes are
    raw = np.frombuffer(data, dtype=np.uint8).astype(np.uint64)
    raw = np.concatenate([raw, np.zeros(4, dtype=np.uint64)])
    words = (raw[:-3] << 24) | (raw[1:-2] << 16) | (raw[2:-1] << 8) | raw[3:]   # 32 bits from each byte on
    total_bits = 8 * len(data)
    ranks, position, decoded = [], 0, 0
    while decoded < count:
        if position >= total_bits:
            raise ValueError(f"the bit string ends after {decoded} of {count} symbols")
        base, stop = position, min(position + CHUNK, total_bits)
        at = np.arange(base, stop, dtype=np.uint64)
        windows = (words[at >> 3] >> (np.uint64(32 - window) - (at & 7))) & np.uint64((1 << window) - 1)
        rank = np.searchsorted(starts, windows.astype(np.int64), side="right") - 1
        hop = (np.arange(base, stop) + sorted_lengths[rank]).tolist()
        chain = []
        while position < stop and decoded + len(chain) < count:   # each code says where the next one starts
            chain.append(position - base)
            position = hop[position - base]
        ranks.append(rank[chain])
        decoded += len(chain)
    if position > total_bits:
        raise ValueError(f"the bit string ends inside symbol {count} of {count}")
    return order[np.concatenate(ranks)].astype(np.int64)
