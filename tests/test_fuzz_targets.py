"""Fuzz targets for the quantizer-string parser, the model-file loader and the deploy loader
(tests/fuzz_targets.py), driven by hypothesis (a bounded run under the "ci" profile; python/fuzz.py
runs them for a time budget), plus every input the fuzzer found as a regression test.

A target passes when the input is accepted or refused with the documented exception
(QuantizerStringError / ValueError / TypeError for strings, ModelFileError for files); any
other exception, or code from a file being run, fails it."""
import io
import random
import zipfile

import pytest
from hypothesis import given, strategies as st

import fuzz_targets as F
from qnn_ext.saving import ModelFileError, load_model


@given(st.randoms(use_true_random=False))
def test_fuzz_parser(rnd):
    F.run_parser(F.parser_input(rnd))


@given(st.text(alphabet=F.CHARS, max_size=60))
def test_fuzz_parser_raw_text(s):
    F.run_parser(s)


@given(st.randoms(use_true_random=False))
def test_fuzz_loader(rnd):
    F.run_loader(F.loader_input(rnd))


@given(st.randoms(use_true_random=False))
def test_fuzz_deploy(rnd):
    F.run_deploy(F.deploy_input(rnd))


# ------------------------------------------------------------------ crash inputs found by fuzzing

@pytest.mark.parametrize("s", [
    "quantized_hswish(64,1e9)",          # OverflowError (34, 'Numerical result out of range')
    "quantized_relu(4,1e9)",
    "stochastic_ternary([],2147483648,3.4e38,None)",  # IndexError on an empty alpha
    "quantized_hswish(symmetric=1e400)",  # OverflowError: cannot convert float infinity
    "quantized_bits(4,0,symmetric=nan)",
    "quantized_bits(2147483648)",        # bits far beyond float32 scales
    "binary(alpha=1e400)",
    "binary(inf,'auto_po2',[nan],min_po2_exponent=99999999999999999999)",  # OverflowError from C
    "quantized_bits(4,0,1,alpha='auto_po2',max_po2_exponent=500)",
])
def test_parser_regressions(s):
    F.run_parser(s)
    from qnn_ext.quantizers import get_quantizer
    with pytest.raises(ValueError):
        get_quantizer(s)


def _replace_member(raw, name, data):
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for n in src.namelist():
            zf.writestr(n, data if n == name else src.read(n))
    return out.getvalue()


def _with_alpha(raw, alpha):
    import json
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        doc = json.loads(zf.read("config.json"))
    for layer in doc["config"]["layers"]:
        if layer["class_name"] == "QConv2D":
            layer["config"]["kernel_quantizer"] = {"class_name": "quantized_bits",
                                                   "config": {"bits": 4, "integer": 0, "alpha": alpha}}
    return _replace_member(raw, "config.json", json.dumps(doc).encode())


@pytest.mark.parametrize("alpha", [[1.0, 2.0], [[[[[[[[[[1.0]]]]]]]]]]])
def test_loader_regression_quantizer_alpha_of_wrong_shape(alpha):
    """Found by the fuzzer: the file loaded and the first predict failed with a bare NumPy
    broadcast error; the load's dry run now refuses it as a ModelFileError naming the file."""
    with pytest.raises(ModelFileError, match="does not run"):
        load_model(io.BytesIO(_with_alpha(F.loader_seed(), alpha)))


def test_pickled_npy_in_model_and_deploy_files_is_refused():
    import os
    for seed, json_name, npz_name, run in [(F.loader_seed(), "config.json", "weights.npz", F.run_loader),
                                            (F.deploy_seed(), "deploy.json", "arrays.npz", F.run_deploy)]:
        with zipfile.ZipFile(io.BytesIO(seed)) as zf:
            npz = zf.read(npz_name)
        with zipfile.ZipFile(io.BytesIO(npz)) as zf:
            first = sorted(zf.namelist())[0]
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(npz)) as src, zipfile.ZipFile(out, "w") as zf:
            for n in src.namelist():
                zf.writestr(n, F.pickled_npy() if n == first else src.read(n))
        run(_replace_member(seed, npz_name, out.getvalue()))  # refused, nothing unpickled
        assert not os.path.exists(F.PWNED)


def test_runner_inputs_are_reproducible():
    assert F.parser_input(random.Random(5)) == F.parser_input(random.Random(5))
    assert F.loader_input(random.Random(5)) == F.loader_input(random.Random(5))


@pytest.mark.parametrize("field,value", [("input_layers", "x" * 300), ("output_layers", "out"),
                                         ("input_layers", [])])
def test_loader_regression_string_in_place_of_a_node_list(field, value):
    """Found by the fuzzer (seed 476624136): input_layers = 'xxx...x' was read one character per
    input layer, giving a loadable model with 300 inputs all fed to layer 'x'."""
    import json
    with zipfile.ZipFile(io.BytesIO(F.loader_seed())) as zf:
        doc = json.loads(zf.read("config.json"))
    doc["config"][field] = value
    raw = _replace_member(F.loader_seed(), "config.json", json.dumps(doc).encode())
    with pytest.raises(ModelFileError, match=field):
        load_model(io.BytesIO(raw))


def test_loader_regression_string_inbound_node():
    import json
    with zipfile.ZipFile(io.BytesIO(F.loader_seed())) as zf:
        doc = json.loads(zf.read("config.json"))
    doc["config"]["layers"][1]["inbound_nodes"] = [["xx"]]
    raw = _replace_member(F.loader_seed(), "config.json", json.dumps(doc).encode())
    with pytest.raises(ModelFileError, match="inbound node"):
        load_model(io.BytesIO(raw))
