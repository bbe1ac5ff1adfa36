"""qnn_ext.datasets: the IDX reader/writer and fashion_mnist.load_data.

Synthetic IDX files are built in tmp_path, partly by hand (so the reader is not only checked
against our own writer); every malformed case must raise IDXFormatError (a ValueError) whose message
names the file and the defect. The real-data test reads the Debian package's files; it is skipped
(with the reason shown under -rs) only when the package dataset-fashion-mnist is not installed.
"""

import gzip
import os
import shutil
import struct
import subprocess

import numpy as np
import pytest

from qnn_ext import datasets
from qnn_ext.datasets import DatasetNotFoundError, IDXFormatError, fashion_mnist
from qnn_ext.datasets.idx import MAX_ELEMENTS, read_idx, write_idx

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def header(code, shape):
    return bytes([0, 0, code, len(shape)]) + struct.pack(">%dI" % len(shape), *shape)


def put(path, payload, gz=False):
    path.write_bytes(gzip.compress(payload, mtime=0) if gz else payload)
    return path


# ---------------------------------------------------------------------------------- round trips

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 3, 4, 2)], ids=["1d", "3d", "4d"])
def test_round_trip(tmp_path, dtype, gz, shape):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None:
        a = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    else:
        a = (rng.standard_normal(shape) * 1e3).astype(dtype)
    p = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(p, a)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == gz
    b = read_idx(p)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert b.shape == shape
    assert b.flags.c_contiguous and b.flags.writeable and b.flags.aligned
    np.testing.assert_array_equal(b, a)


def test_hand_built_big_endian_values(tmp_path):
    # Independent of write_idx: big-endian bytes spelled out, values known.
    i16 = header(0x0B, (2, 2)) + struct.pack(">4h", 1, -2, 300, -32768)
    i32 = header(0x0C, (3,)) + struct.pack(">3i", 2 ** 31 - 1, -1, 65536)
    f32 = header(0x0D, (2,)) + struct.pack(">2f", 1.5, -0.25)
    f64 = header(0x0E, (1, 1, 1, 2)) + struct.pack(">2d", 1e300, -3.0)
    i8 = header(0x09, (3,)) + bytes([0x80, 0xFF, 0x7F])
    u8 = header(0x08, (2, 3)) + bytes([0, 1, 2, 253, 254, 255])
    cases = [(i16, np.int16, [[1, -2], [300, -32768]]), (i32, np.int32, [2 ** 31 - 1, -1, 65536]),
             (f32, np.float32, [1.5, -0.25]), (f64, np.float64, [[[[1e300, -3.0]]]]),
             (i8, np.int8, [-128, -1, 127]), (u8, np.uint8, [[0, 1, 2], [253, 254, 255]])]
    for k, (payload, dtype, expected) in enumerate(cases):
        for gz in (False, True):
            got = read_idx(put(tmp_path / ("c%d%s" % (k, ".gz" if gz else "")), payload, gz))
            assert got.dtype == np.dtype(dtype) and got.dtype.isnative
            np.testing.assert_array_equal(got, np.array(expected, dtype=dtype))
    # the writer produces exactly these bytes
    write_idx(tmp_path / "w", np.array([[1, -2], [300, -32768]], np.int16))
    assert (tmp_path / "w").read_bytes() == i16


def test_compression_detected_from_content_not_name(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_idx(tmp_path / "gz_without_suffix", a, compress=True)
    write_idx(tmp_path / "plain.gz", a, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "gz_without_suffix"), a)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "plain.gz")), a)


def test_multi_member_gzip_and_empty_axis(tmp_path):
    payload = header(0x08, (2, 3)) + bytes(range(6))
    p = tmp_path / "multi.gz"
    p.write_bytes(gzip.compress(payload[:7]) + gzip.compress(payload[7:]))  # valid gzip
    np.testing.assert_array_equal(read_idx(p), np.arange(6, dtype=np.uint8).reshape(2, 3))
    e = read_idx(put(tmp_path / "empty", header(0x08, (0, 28, 28))))
    assert e.shape == (0, 28, 28) and e.dtype == np.uint8


def test_write_idx_rejects_what_idx_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match=r"dtype int64 has no IDX type code"):
        write_idx(tmp_path / "x", np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"dtype bool has no IDX type code"):
        write_idx(tmp_path / "x", np.zeros(3, bool))
    with pytest.raises(ValueError, match=r"0 dimensions; expected 1\.\.4"):
        write_idx(tmp_path / "x", np.uint8(3))
    with pytest.raises(ValueError, match=r"5 dimensions; expected 1\.\.4"):
        write_idx(tmp_path / "x", np.zeros((1,) * 5, np.uint8))


# ----------------------------------------------------------------------------- malformed files

GOOD = header(0x08, (2, 3)) + bytes(range(6))

MALFORMED = [
    ("empty", b"", r"file is empty"),
    ("short_magic", b"\x00\x00", r"truncated header: expected a 4-byte magic, got 2 byte"),
    ("bad_magic", b"\x89PNG\r\n\x1a\n" + bytes(16), r"bad IDX magic 89 50 4e 47: expected the "
                                                    r"first two bytes to be 00 00"),
    ("bad_magic_1", b"\x00\x01\x08\x01" + bytes(8), r"bad IDX magic 00 01 08 01"),
    ("unknown_type", header(0x0A, (3,)) + bytes(3),
     r"unknown IDX data type code 0x0A .*expected one of 0x08 \(uint8\), 0x09 \(int8\), "
     r"0x0B \(int16\), 0x0C \(int32\), 0x0D \(float32\), 0x0E \(float64\)"),
    ("ndim0", b"\x00\x00\x08\x00", r"declares 0 dimensions .*expected 1\.\.4: IDX data is an "
                                   r"array with at least one axis"),
    ("ndim5", header(0x08, (1, 1, 1, 1, 1)) + b"\x00",
     r"declares 5 dimensions; this reader accepts 1\.\.4 .*corrupt or not IDX"),
    ("ndim255", b"\x00\x00\x08\xff", r"declares 255 dimensions"),
    ("short_dims", header(0x08, (2, 3))[:9], r"truncated header: 2 dimensions need 8 bytes "
                                             r"after the magic, got 5"),
    ("too_many_elements", header(0x08, (65536, 65536, 2)),
     r"dimensions \(65536, 65536, 2\) give 8589934592 elements, above the limit of 2147483648"),
    ("max_dims", header(0x0E, (2 ** 32 - 1,) * 4),
     r"dimensions \(4294967295, 4294967295, 4294967295, 4294967295\) give \d+ elements, "
     r"above the limit"),
    ("truncated_data", header(0x0C, (2, 3)) + bytes(20),
     r"truncated IDX data: shape \(2, 3\) of int32 needs 24 data bytes after the 12-byte "
     r"header, the (file|gzip-decompressed data) has 20"),
    ("no_data", header(0x08, (60000, 28, 28)),
     r"truncated IDX data: shape \(60000, 28, 28\) of uint8 needs 47040000 data bytes after the "
     r"16-byte header, the (file|gzip-decompressed data) has 0"),
    ("trailing", GOOD + b"\x00\x07\x09", r"3 trailing byte\(s\) after the IDX data: shape "
                                         r"\(2, 3\) of uint8 needs 6 data bytes"),
]


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("name,payload,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_file_raises_clear_error(tmp_path, name, payload, message, gz):
    p = put(tmp_path / (name + (".gz" if gz else "")), payload, gz)
    with pytest.raises(IDXFormatError, match=message) as err:
        read_idx(p)
    assert isinstance(err.value, ValueError)
    assert str(err.value).startswith(str(p) + ": ")


def test_element_cap_is_adjustable(tmp_path):
    p = put(tmp_path / "a", header(0x08, (10, 10)) + bytes(100))
    assert read_idx(p, max_elements=100).shape == (10, 10)
    with pytest.raises(IDXFormatError, match=r"give 100 elements, above the limit of 99"):
        read_idx(p, max_elements=99)
    assert MAX_ELEMENTS == 2 ** 31


def test_truncated_gzip_stream(tmp_path):
    rng = np.random.default_rng(1)
    payload = header(0x08, (50, 28, 28)) + rng.integers(0, 256, 50 * 784, dtype=np.uint8).tobytes()
    z = gzip.compress(payload, mtime=0)
    for cut, where in [(len(z) // 2, r"data \(39200 bytes expected\)"),
                       (len(z) - 4, r"end of the stream \(the IDX data itself was complete\)"),
                       (12, r"header \(4 bytes expected\)")]:
        p = tmp_path / ("cut%d.gz" % cut)
        p.write_bytes(z[:cut])
        with pytest.raises(IDXFormatError, match=r"^%s: truncated gzip stream while reading the %s"
                                                 % (str(p).replace("\\", "\\\\"), where)):
            read_idx(p)


def test_corrupt_gzip(tmp_path):
    z = bytearray(gzip.compress(GOOD, mtime=0))
    z[-8] ^= 0xFF  # CRC32 of the member
    p = tmp_path / "crc.gz"
    p.write_bytes(bytes(z))
    with pytest.raises(IDXFormatError, match=r"crc\.gz: corrupt gzip data .*CRC check failed"):
        read_idx(p)
    q = tmp_path / "garbage.gz"
    q.write_bytes(bytes(gzip.compress(GOOD, mtime=0)[:10]) + b"\xff" * 40)  # bad deflate data
    with pytest.raises(IDXFormatError, match=r"garbage\.gz: corrupt gzip data while reading"):
        read_idx(q)


def test_absurd_header_in_small_gzip_does_not_allocate(tmp_path):
    # 2**31 float64 elements claimed (16 GiB), 8 bytes present: must fail fast on the real size.
    p = put(tmp_path / "huge.gz", header(0x0E, (2 ** 15, 2 ** 16)) + bytes(8), gz=True)
    with pytest.raises(IDXFormatError, match=r"needs 17179869184 data bytes .* has 8$"):
        read_idx(p)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# ------------------------------------------------------------------------ fashion_mnist.load_data

def make_fake(directory, n_train=12, n_test=5, gz=True, seed=0):
    """Tiny data set with the real file names; returns the arrays written."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = [rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              rng.integers(0, 10, n_test, dtype=np.uint8)]
    for k, (name, a) in enumerate(zip(NAMES, arrays)):
        z = gz if isinstance(gz, bool) else gz[k]
        write_idx(directory / (name + (".gz" if z else "")), a, compress=z)
    return arrays


@pytest.fixture
def no_system_data(monkeypatch, tmp_path):
    """Searches never reach the real Debian directory, and QNN_EXT_DATA starts unset."""
    monkeypatch.setattr(datasets, "SYSTEM_DIR", str(tmp_path / "no-system-datasets"))
    monkeypatch.delenv("QNN_EXT_DATA", raising=False)


def check_loaded(result, arrays):
    (x_train, y_train), (x_test, y_test) = result
    for got, want in zip((x_train, y_train, x_test, y_test), arrays):
        assert got.dtype == np.uint8 and got.shape == want.shape and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)


def test_load_data_from_env_dir(tmp_path, monkeypatch, no_system_data):
    arrays = make_fake(tmp_path / "data")
    monkeypatch.setenv("QNN_EXT_DATA", str(tmp_path / "data"))
    check_loaded(fashion_mnist.load_data(), arrays)


def test_load_data_plain_and_mixed_files_in_env_subdir(tmp_path, monkeypatch, no_system_data):
    plain = make_fake(tmp_path / "d1" / "fashion-mnist", gz=False, seed=1)
    monkeypatch.setenv("QNN_EXT_DATA", str(tmp_path / "d1"))
    check_loaded(fashion_mnist.load_data(), plain)
    mixed = make_fake(tmp_path / "d2", gz=[True, False, False, True], seed=2)
    monkeypatch.setenv("QNN_EXT_DATA", str(tmp_path / "d2"))
    check_loaded(fashion_mnist.load_data(), mixed)


def test_search_order(tmp_path, monkeypatch, no_system_data):
    in_system = make_fake(tmp_path / "sys" / "fashion-mnist", seed=3)
    monkeypatch.setattr(datasets, "SYSTEM_DIR", str(tmp_path / "sys"))
    check_loaded(fashion_mnist.load_data(), in_system)          # no env: Debian-style directory
    in_root = make_fake(tmp_path / "env", seed=4)
    monkeypatch.setenv("QNN_EXT_DATA", str(tmp_path / "env"))
    check_loaded(fashion_mnist.load_data(), in_root)            # env beats the system directory
    in_sub = make_fake(tmp_path / "env" / "fashion-mnist", seed=5)
    check_loaded(fashion_mnist.load_data(), in_sub)             # $QNN_EXT_DATA/fashion-mnist first
    explicit = make_fake(tmp_path / "explicit", seed=6)
    check_loaded(fashion_mnist.load_data(path=tmp_path / "explicit"), explicit)  # path= beats all
    monkeypatch.setenv("QNN_EXT_DATA", str(tmp_path / "empty-env"))
    check_loaded(fashion_mnist.load_data(), in_system)          # env dir without files: fall back


def test_missing_data_error_says_where_and_how(tmp_path, monkeypatch, no_system_data):
    monkeypatch.setenv("QNN_EXT_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as err:
        fashion_mnist.load_data()
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    for where in [tmp_path / "env" / "fashion-mnist", tmp_path / "env",
                  tmp_path / "no-system-datasets" / "fashion-mnist"]:
        assert str(where) in msg
    for needed in ["apt-get install dataset-fashion-mnist", "QNN_EXT_DATA", "path=", *NAMES,
                   "Nothing is downloaded"]:
        assert needed in msg, needed

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"looked for .* in: %s\. .*apt-get install "
                                                r"dataset-fashion-mnist.*QNN_EXT_DATA"
                       % str(tmp_path / "empty").replace("\\", "\\\\")):
        fashion_mnist.load_data(path=tmp_path / "empty")


def test_incomplete_directory_is_reported_not_mixed(tmp_path, monkeypatch, no_system_data):
    make_fake(tmp_path / "d")
    os.remove(tmp_path / "d" / "t10k-labels-idx1-ubyte.gz")
    make_fake(tmp_path / "sys" / "fashion-mnist")  # complete, but must not be mixed in
    monkeypatch.setattr(datasets, "SYSTEM_DIR", str(tmp_path / "sys"))
    monkeypatch.setenv("QNN_EXT_DATA", str(tmp_path / "d"))
    with pytest.raises(DatasetNotFoundError, match=r"incomplete data in .*[/\\]d: found "
                                                   r"train-images-idx3-ubyte\.gz, .* but not "
                                                   r"t10k-labels-idx1-ubyte"):
        fashion_mnist.load_data()


def test_count_mismatch(tmp_path, no_system_data):
    make_fake(tmp_path, n_train=12)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(IDXFormatError, match=r"train split: image/label count mismatch: "
                                             r".*train-images-idx3-ubyte\.gz holds 12 images but "
                                             r".*train-labels-idx1-ubyte\.gz holds 11 labels"):
        fashion_mnist.load_data(path=tmp_path)


def test_labels_out_of_range(tmp_path, no_system_data):
    make_fake(tmp_path, n_test=5)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0, 9, 10, 3, 255], np.uint8))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: labels must be in 0\.\.9; "
                                         r"2 label\(s\) outside, first at index 2 with value 10"):
        fashion_mnist.load_data(path=tmp_path)


@pytest.mark.parametrize("name,array,message", [
    ("train-images-idx3-ubyte", np.zeros((12, 28, 27), np.uint8),
     r"expected Fashion-MNIST images, uint8 of shape \(N, 28, 28\); got uint8 of shape "
     r"\(12, 28, 27\)"),
    ("t10k-images-idx3-ubyte", np.zeros((5, 28, 28), np.int16),
     r"expected Fashion-MNIST images, uint8 .*got int16 of shape \(5, 28, 28\)"),
    ("t10k-labels-idx1-ubyte", np.zeros((5, 1), np.uint8),
     r"expected Fashion-MNIST labels, uint8 of shape \(N,\); got uint8 of shape \(5, 1\)"),
])
def test_wrong_array_kind(tmp_path, no_system_data, name, array, message):
    make_fake(tmp_path)
    write_idx(tmp_path / (name + ".gz"), array)
    with pytest.raises(IDXFormatError, match=name.replace("-", r"\-") + r"\.gz: " + message):
        fashion_mnist.load_data(path=tmp_path)


def test_malformed_file_propagates(tmp_path, no_system_data):
    make_fake(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(IDXFormatError, match=r"train-images-idx3-ubyte\.gz: truncated gzip"):
        fashion_mnist.load_data(path=tmp_path)


# ------------------------------------------------------------------------------------ real data

def debian_package_installed():
    if shutil.which("dpkg-query") is None:
        return False
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "dataset-fashion-mnist"],
                       capture_output=True, text=True)
    return r.returncode == 0 and r.stdout.strip() == "install ok installed"


@pytest.fixture(scope="module")
def real_data():
    # Skip only when the package is absent; installed-but-missing/broken files must fail.
    if not debian_package_installed():
        pytest.skip("Debian package dataset-fashion-mnist is not installed "
                    "(apt-get install dataset-fashion-mnist; CI installs it)")
    return fashion_mnist.load_data(path=DEBIAN_DIR)


def test_real_fashion_mnist(real_data):
    (x_train, y_train), (x_test, y_test) = real_data
    assert (x_train.shape, y_train.shape, x_test.shape, y_test.shape) == \
        ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8 and a.flags.c_contiguous
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), [1000] * 10)
    np.testing.assert_array_equal(y_train[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    np.testing.assert_array_equal(y_test[:10], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
    # The commonly quoted normalisation constants (mean 0.2860, std 0.3530 of x/255) and exact sums.
    assert int(x_train.sum(dtype=np.int64)) == 3431114169
    assert int(x_test.sum(dtype=np.int64)) == 573469082
    assert abs(x_train.mean() / 255 - 0.2860406) < 1e-6
    assert abs(x_train.std() / 255 - 0.3530242) < 1e-6
    assert abs(x_test.mean() / 255 - 0.2868493) < 1e-6
    assert x_train.min() == 0 and x_train.max() == 255
    assert int(x_train[0].sum(dtype=np.int64)) == 76247 and x_train[0, 14, 14] == 217


def test_real_matches_keras_style_read(real_data):
    # Keras reads these files as np.frombuffer(gzip bytes, uint8, offset=8 or 16): same arrays.
    (x_train, y_train), (x_test, y_test) = real_data

    def keras_read(name, offset):
        with gzip.open(os.path.join(DEBIAN_DIR, name + ".gz"), "rb") as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)

    np.testing.assert_array_equal(y_test, keras_read(NAMES[3], 8))
    np.testing.assert_array_equal(x_test, keras_read(NAMES[2], 16).reshape(len(y_test), 28, 28))
    np.testing.assert_array_equal(y_train, keras_read(NAMES[1], 8))
