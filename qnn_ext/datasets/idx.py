"""Reader and writer for the IDX format (the MNIST / Fashion-MNIST file format), plain or gzipped.

Layout (http://yann.lecun.com/exdb/mnist/): a 4-byte magic ``00 00 <type> <ndim>``, then ``ndim``
big-endian uint32 dimensions, then the elements in C order, big-endian.

    from qnn_ext.datasets.idx import read_idx, write_idx
    labels = read_idx("train-labels-idx1-ubyte.gz")     # numpy.ndarray, native byte order

Every defect of a file raises ``IDXFormatError`` (a ``ValueError``) naming the file, what is wrong
and the expected vs actual values. Nothing here unpickles or downloads anything.
"""

import gzip
import os
import struct
import zlib

import numpy as np

__all__ = ["IDXFormatError", "read_idx", "write_idx", "IDX_DTYPES", "MAX_NDIM", "MAX_ELEMENTS"]

# Type byte -> element dtype as stored (big-endian). Arrays are returned in native byte order.
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32",
               0x0E: "float64"}
_TYPE_NAMES_BY_DTYPE = {IDX_DTYPES[c]: _TYPE_NAMES[c] for c in IDX_DTYPES}

# The format allows 255 dimensions, but real IDX files use 1 (labels) to 3 (images) or 4 (colour
# images); a larger count almost always means the file is not IDX, so refuse it instead of
# interpreting garbage as a shape.
MAX_NDIM = 4
# 2**31 elements (2 GiB of uint8) is far beyond any IDX data set; the cap stops a corrupt or hostile
# header from making us allocate or decompress without bound.
MAX_ELEMENTS = 2 ** 31

_GZIP_MAGIC = b"\x1f\x8b"
# Decompressing in bounded chunks keeps the memory in use proportional to the data actually
# present, not to what a (possibly corrupt) header claims.
_CHUNK = 1 << 24
# How much trailing data to count before reporting "more than" (bounds work on a gzip bomb).
_TRAILING_LIMIT = 1 << 26


class IDXFormatError(ValueError):
    """An IDX file is malformed (bad header, wrong size, corrupt compression, ...)."""


def _dtype_for_code(code, name):
    if code not in IDX_DTYPES:
        known = ", ".join("0x%02X (%s)" % (c, _TYPE_NAMES[c]) for c in sorted(IDX_DTYPES))
        raise IDXFormatError("%s: unknown IDX data type code 0x%02X (third byte of the magic); "
                             "expected one of %s" % (name, code, known))
    return IDX_DTYPES[code]


class _GzipErrors:
    """Turns gzip failures inside the block into IDXFormatError naming the file and position."""

    def __init__(self, name, where, want=None):
        self.name, self.where, self.want = name, where, want

    def __enter__(self):
        return self

    def __exit__(self, tp, e, tb):
        if tp is None:
            return False
        progress = ""
        if self.want is not None:
            progress = " (%d bytes expected)" % self.want
        if issubclass(tp, EOFError):
            # gzip raises EOFError when the compressed stream stops before its end marker.
            raise IDXFormatError("%s: truncated gzip stream while reading the %s%s: %s"
                                 % (self.name, self.where, progress, e)) from None
        if issubclass(tp, (gzip.BadGzipFile, zlib.error)):
            raise IDXFormatError("%s: corrupt gzip data while reading the %s%s: %s"
                                 % (self.name, self.where, progress, e)) from None
        return False


def _read_exact(f, n, name, what):
    """Up to n bytes from a raw or gzip stream, as a bytearray (fewer only at end of data).

    The buffer grows chunk by chunk rather than being sized from the header, so a corrupt header
    claiming gigabytes costs nothing unless the data is really there.
    """
    buf = bytearray()
    with _GzipErrors(name, what, n):
        while len(buf) < n:
            chunk = f.read(min(_CHUNK, n - len(buf)))
            if not chunk:
                break
            buf += chunk
    return buf


def _count_trailing(f, name):
    """Bytes left in the stream, counting at most _TRAILING_LIMIT (then returns more than it)."""
    total = 0
    with _GzipErrors(name, "end of the stream (the IDX data itself was complete)"):
        while total <= _TRAILING_LIMIT:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            total += len(chunk)
    return total


def _parse_header(f, name):
    head = _read_exact(f, 4, name, "header")
    if len(head) == 0:
        raise IDXFormatError("%s: file is empty; expected an IDX header (magic 00 00 <type> "
                             "<ndim>)" % name)
    if len(head) < 4:
        raise IDXFormatError("%s: truncated header: expected a 4-byte magic, got %d byte(s)"
                             % (name, len(head)))
    if head[0] != 0 or head[1] != 0:
        raise IDXFormatError("%s: bad IDX magic %s: expected the first two bytes to be 00 00 "
                             "(magic 00 00 <type> <ndim>); not an IDX file"
                             % (name, head.hex(" ")))
    dtype = _dtype_for_code(head[2], name)
    ndim = head[3]
    if ndim == 0:
        raise IDXFormatError("%s: IDX header declares 0 dimensions (fourth byte of the magic); "
                             "expected 1..%d: IDX data is an array with at least one axis"
                             % (name, MAX_NDIM))
    if ndim > MAX_NDIM:
        raise IDXFormatError("%s: IDX header declares %d dimensions; this reader accepts 1..%d "
                             "(labels have 1, images 3, colour images 4), so the header is "
                             "most likely corrupt or not IDX" % (name, ndim, MAX_NDIM))
    raw = _read_exact(f, 4 * ndim, name, "dimensions")
    if len(raw) < 4 * ndim:
        raise IDXFormatError("%s: truncated header: %d dimensions need %d bytes after the magic, "
                             "got %d" % (name, ndim, 4 * ndim, len(raw)))
    shape = struct.unpack(">%dI" % ndim, raw)
    return dtype, shape, 4 + 4 * ndim


def _check_size(shape, dtype, name, max_elements):
    count = 1
    for d in shape:
        count *= d  # Python ints: the product cannot overflow, so compare it directly to the cap
    if count > max_elements:
        raise IDXFormatError("%s: IDX dimensions %s give %d elements, above the limit of %d "
                             "(max_elements); the header is corrupt or the file is not meant "
                             "for this reader" % (name, tuple(shape), count, max_elements))
    return count, count * dtype.itemsize


def _open(path):
    """Binary stream over the IDX bytes, transparently decompressing gzip (detected by content)."""
    f = open(path, "rb")
    try:
        magic = f.read(2)
        f.seek(0)
        if magic == _GZIP_MAGIC:
            return gzip.GzipFile(fileobj=f, mode="rb"), f, True
    except BaseException:
        f.close()
        raise
    return f, f, False


def read_idx(path, max_elements=MAX_ELEMENTS):
    """Read one IDX file (plain or gzip-compressed, detected from its first bytes).

    Returns a C-contiguous, writeable ``numpy.ndarray`` in native byte order whose dtype is given
    by the header (uint8, int8, int16, int32, float32 or float64) and whose shape is the header's
    dimensions. Raises ``IDXFormatError`` (a ``ValueError``) on any defect: bad magic, unknown type
    code, 0 or more than ``MAX_NDIM`` dimensions, more than ``max_elements`` elements, truncated
    data, trailing bytes, truncated or corrupt gzip stream. ``FileNotFoundError`` if ``path`` does
    not exist.
    """
    name = os.fspath(path)
    stream, raw_file, compressed = _open(path)
    try:
        dtype, shape, header_bytes = _parse_header(stream, name)
        count, nbytes = _check_size(shape, dtype, name, max_elements)
        kind = "gzip-decompressed data" if compressed else "file"
        if not compressed:
            # Plain files: the size is known, so check it before allocating anything.
            actual = os.fstat(raw_file.fileno()).st_size - header_bytes
            if actual < nbytes:
                raise IDXFormatError(
                    "%s: truncated IDX data: shape %s of %s needs %d data bytes after the "
                    "%d-byte header, the file has %d"
                    % (name, tuple(shape), _TYPE_NAMES_BY_DTYPE[dtype], nbytes, header_bytes,
                       actual))
            if actual > nbytes:
                raise IDXFormatError(
                    "%s: %d trailing byte(s) after the IDX data: shape %s of %s needs %d data "
                    "bytes after the %d-byte header, the file has %d"
                    % (name, actual - nbytes, tuple(shape), _TYPE_NAMES_BY_DTYPE[dtype], nbytes,
                       header_bytes, actual))
        data = _read_exact(stream, nbytes, name, "data")
        if len(data) < nbytes:
            raise IDXFormatError(
                "%s: truncated IDX data: shape %s of %s needs %d data bytes after the %d-byte "
                "header, the %s has %d"
                % (name, tuple(shape), _TYPE_NAMES_BY_DTYPE[dtype], nbytes, header_bytes, kind,
                   len(data)))
        if compressed:
            extra = _count_trailing(stream, name)
            if extra:
                amount = ("%d" % extra if extra <= _TRAILING_LIMIT
                          else "more than %d" % _TRAILING_LIMIT)
                raise IDXFormatError(
                    "%s: %s trailing byte(s) after the IDX data: shape %s of %s needs %d data "
                    "bytes after the %d-byte header"
                    % (name, amount, tuple(shape), _TYPE_NAMES_BY_DTYPE[dtype], nbytes,
                       header_bytes))
    finally:
        stream.close()
        if raw_file is not stream:
            raw_file.close()
    # A bytearray buffer makes the array writeable without a copy (single-byte types); multi-byte
    # types are byte-swapped into a fresh native-order array.
    arr = np.frombuffer(data, dtype=dtype, count=count).reshape(shape)
    if dtype.itemsize > 1:
        arr = arr.astype(dtype.newbyteorder("="), order="C")
    return arr


_CODE_BY_KIND = {
    ("u", 1): 0x08, ("i", 1): 0x09, ("i", 2): 0x0B, ("i", 4): 0x0C, ("f", 4): 0x0D, ("f", 8): 0x0E,
}


def write_idx(path, array, compress=None):
    """Write ``array`` as an IDX file; gzip-compressed if ``compress`` is true, or when it is None
    and ``path`` ends in ``.gz``. Supported dtypes: uint8, int8, int16, int32, float32, float64;
    1..MAX_NDIM dimensions, each below 2**32."""
    a = np.asarray(array)
    code = _CODE_BY_KIND.get((a.dtype.kind, a.dtype.itemsize))
    if code is None:
        raise ValueError("write_idx: dtype %s has no IDX type code; expected one of %s"
                         % (a.dtype, ", ".join(_TYPE_NAMES.values())))
    if not 1 <= a.ndim <= MAX_NDIM:
        raise ValueError("write_idx: array has %d dimensions; expected 1..%d" % (a.ndim, MAX_NDIM))
    if any(d >= 2 ** 32 for d in a.shape):
        raise ValueError("write_idx: shape %s has a dimension >= 2**32, which IDX cannot store"
                         % (a.shape,))
    header = bytes([0, 0, code, a.ndim]) + struct.pack(">%dI" % a.ndim, *a.shape)
    payload = header + np.ascontiguousarray(a, dtype=IDX_DTYPES[code]).tobytes()
    if compress is None:
        compress = os.fspath(path).endswith(".gz")
    if compress:
        # mtime=0: byte-identical output for identical input
        payload = gzip.compress(payload, mtime=0)
    with open(path, "wb") as f:
        f.write(payload)
