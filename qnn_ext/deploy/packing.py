"""Weight panels of the integer kernels (layouts in csrc/kernels/bnn/bnn.h), built once at
convert time, the same for every ISA so a saved integer model runs on any CPU.

* binary: ``(ceil(CO/32), KH*KW*ceil(C/64), 32)`` uint64; word k of channel o holds the signs of
  64 input channels of one kernel tap, bit 1 for a negative weight, padding bits 0;
* ternary: ``(ceil(CO/32), KH*KW*ceil(C/64), 2, 32)`` uint64: a sign plane and a nonzero plane;
* int8: ``(ceil(CO/64), ceil(KH*KW*C/4), 64, 4)`` int8: 4 consecutive k of one channel together,
  the group vpdpbusd multiplies, zeros past K and CO.
"""
import numpy as np

BNN_NR = 32
INT8_NR = 64


def words(c):
    """64-bit words holding c packed channels."""
    return -(-int(c) // 64)


def pack_signs(neg, axis=-1):
    """Bool array -> uint64 words along `axis` (moved last): bit i of word j is element 64j+i."""
    neg = np.moveaxis(np.asarray(neg, dtype=bool), axis, -1)
    c = neg.shape[-1]
    pad = words(c) * 64 - c
    if pad:
        neg = np.concatenate([neg, np.zeros(neg.shape[:-1] + (pad,), bool)], axis=-1)
    b = np.packbits(neg.reshape(neg.shape[:-1] + (-1, 64)), axis=-1, bitorder="little")
    return np.ascontiguousarray(b).view(np.uint64)[..., 0]


def unpack_signs(w, c):
    """uint64 words (..., words) -> bool (..., c): the inverse of pack_signs."""
    w = np.ascontiguousarray(w, dtype=np.uint64)
    b = np.unpackbits(w.view(np.uint8).reshape(w.shape + (8,)), axis=-1, bitorder="little")
    return b.reshape(w.shape[:-1] + (-1,))[..., :c].astype(bool)


def pack_tbits(values):
    """Ternary values (..., C) in {-a, 0, a} -> (..., 2*words(C)) uint64 word pairs
    [sign w0, nonzero w0, sign w1, ...]: the layout of ternary activations (bnn.h)."""
    v = np.asarray(values)
    sg, nz = pack_signs(v < 0), pack_signs(v != 0)
    return np.ascontiguousarray(np.stack([sg, nz], axis=-1).reshape(v.shape[:-1] + (-1,)))


def unpack_tbits(words_, c):
    """Word pairs -> int8 codes in {-1, 0, 1} (..., c)."""
    w = np.asarray(words_, np.uint64)
    pairs = w.reshape(w.shape[:-1] + (-1, 2))
    sg, nz = unpack_signs(pairs[..., 0], c), unpack_signs(pairs[..., 1], c)
    return np.where(nz, np.where(sg, -1, 1), 0).astype(np.int8)


def pack_binary_weights(codes):
    """codes (KH, KW, C, CO) in {-1, +1} -> (panel, wsum): the binary panel and the per-tap sums
    of the +-1 weights (KH*KW, CO) int32 that the zero-padding correction subtracts."""
    codes = np.asarray(codes)
    kh, kw, c, co = codes.shape
    packed = pack_signs(codes < 0, axis=2)                       # (KH, KW, CO, Cw)
    kwords = kh * kw * words(c)
    mat = np.moveaxis(packed, 2, -1).reshape(kwords, co)         # (Kw, CO), k = tap*Cw + word
    nb = -(-co // BNN_NR)
    full = np.zeros((kwords, nb * BNN_NR), np.uint64)
    full[:, :co] = mat
    panel = np.ascontiguousarray(full.reshape(kwords, nb, BNN_NR).transpose(1, 0, 2))
    wsum = codes.reshape(kh * kw, c, co).sum(axis=1).astype(np.int32)
    return panel, np.ascontiguousarray(wsum)


def pack_ternary_weights(codes):
    """codes (KH, KW, C, CO) in {-1, 0, 1} -> (panel, wsum, nnz): the ternary panel
    (ceil(CO/32), Kw, 2, 32) with a sign plane (1 = negative) and a nonzero plane, the per-tap
    sums for the padding correction, and the nonzero count per channel (the dot's offset)."""
    codes = np.asarray(codes)
    sign, wsum = pack_binary_weights(np.where(codes < 0, -1, 1))
    mask, _ = pack_binary_weights(np.where(codes != 0, -1, 1))
    panel = np.ascontiguousarray(np.stack([sign, mask], axis=2))
    wsum = codes.reshape(codes.shape[0] * codes.shape[1], codes.shape[2], -1).sum(axis=1).astype(np.int32)
    nnz = (codes != 0).reshape(-1, codes.shape[-1]).sum(0).astype(np.int32)
    return panel, np.ascontiguousarray(wsum), nnz


def pack_int8_weights(codes):
    """codes (KH, KW, C, CO) integers in [-128, 127] -> the int8 panel."""
    codes = np.asarray(codes)
    kh, kw, c, co = codes.shape
    k = kh * kw * c
    kq, nb = -(-k // 4), -(-co // INT8_NR)
    full = np.zeros((kq * 4, nb * INT8_NR), np.int8)
    full[:k, :co] = codes.reshape(k, co)
    return np.ascontiguousarray(full.reshape(kq, 4, nb, INT8_NR).transpose(2, 0, 3, 1))


def pack_codes(codes, bits, binary=False):
    """Integer weight codes -> bytes holding `bits` bits per code (two's complement, little-endian
    bit order), or one bit per +-1 code (1 = negative) when `binary`: what a deploy file stores."""
    c = np.asarray(codes).ravel().astype(np.int64)
    if binary:
        return np.packbits(c < 0, bitorder="little")
    u = (c & ((1 << bits) - 1)).astype(np.uint8)
    b = np.unpackbits(u[:, None], axis=1, bitorder="little")[:, :bits]
    return np.packbits(b.ravel(), bitorder="little")


def unpack_codes(buf, bits, count, binary=False):
    """The inverse of pack_codes: int8 codes (count,)."""
    b = np.unpackbits(np.asarray(buf, np.uint8), bitorder="little")
    if binary:
        return (1 - 2 * b[:count].astype(np.int8)).astype(np.int8)
    b = b[:count * bits].reshape(count, bits).astype(np.int64)
    v = (b << np.arange(bits)).sum(1)
    return np.where(v >= 1 << (bits - 1), v - (1 << bits), v).astype(np.int8)
