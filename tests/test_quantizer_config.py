"""str(), get_config()/from_config(), get_quantizer(), max()/min()/range(), bits,
_set_trainable_parameter() and update_qnoise_factor() of the qnn_ext quantizers.

Expected strings and configs are QKeras's (quantizers.md §1.1, §1.2, §3; where the spec is silent,
QKeras's qkeras/quantizers.py __str__/get_config). max/min/range values port QKeras's
tests/min_max_test.py and tests/range_test.py.

Deliberate differences from QKeras asserted here (QKeras crashes in these places):
* quantized_hswish: __str__ works (QKeras asserts a str is an int), from_config(get_config())
  works (QKeras's get_config has keep_negative/post_training_scale, which its __init__ rejects),
  and min() returns the quantized parabola minimum (QKeras calls a missing .call).
* quantized_linear with a numeric alpha: __str__ works (QKeras: UnboundLocalError).
"""

import numpy as np
import pytest

import qnn_ext
from qnn_ext import quantizers as qz

F32 = np.float32


def make(name, args=(), kwargs=None):
    return getattr(qz, name)(*args, **(kwargs or {}))


def _id(name, args, kwargs):
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in (kwargs or {}).items()]
    return f"{name}({','.join(parts)})"


ALL_CLASSES = ["quantized_bits", "quantized_linear", "quantized_relu", "quantized_tanh",
               "quantized_sigmoid", "quantized_ulaw", "quantized_po2", "quantized_relu_po2",
               "quantized_hswish", "binary", "stochastic_binary", "ternary",
               "stochastic_ternary", "bernoulli"]
FUNCTIONS = ["hard_sigmoid", "smooth_sigmoid", "binary_sigmoid", "binary_tanh", "hard_tanh",
             "smooth_tanh"]


def test_exports():
    for name in ALL_CLASSES + FUNCTIONS + ["set_internal_sigmoid", "get_quantizer"]:
        assert hasattr(qz, name), name
        assert getattr(qnn_ext, name) is getattr(qz, name), name


# ---------------------------------------------------------------------------------------------
# __str__
# ---------------------------------------------------------------------------------------------

STR_CASES = [
    ("quantized_bits", (4,), None, "quantized_bits(4,0,0)"),                       # [test]
    ("quantized_bits", (1, 0, 1), {"alpha": 1.0}, "quantized_bits(1,0,1,alpha=1.0)"),  # [test]
    ("quantized_bits", (10, 6, 1), None, "quantized_bits(10,6,1)"),                # [test]
    ("quantized_bits", (4, 0, 1), {"alpha": "auto_po2"}, "quantized_bits(4,0,1,alpha='auto_po2')"),
    ("quantized_bits", (4,), {"alpha": "auto"}, "quantized_bits(4,0,1,alpha='auto')"),  # sym forced
    ("quantized_bits", (6, 2), {"keep_negative": False}, "quantized_bits(6,2,0,keep_negative=False)"),
    ("quantized_bits", (8, 3, 1), {"use_stochastic_rounding": True},
     "quantized_bits(8,3,1,use_stochastic_rounding=1)"),
    ("quantized_bits", (3, 1, 1), {"alpha": 0.5}, "quantized_bits(3,1,1,alpha=0.5)"),
    ("quantized_bits", (4, 0, True), None, "quantized_bits(4,0,1)"),
    ("quantized_linear", (4,), None, "quantized_linear(4,0,1)"),
    ("quantized_linear", (4, 1, 0),
     {"keep_negative": False, "alpha": "auto", "use_stochastic_rounding": True},
     "quantized_linear(4,1,0,keep_negative=False,alpha='auto',use_stochastic_rounding=1)"),
    ("quantized_relu", (4,), None, "quantized_relu(4,0)"),                         # [test]
    ("quantized_relu", (6, 2, 1), None, "quantized_relu(6,2,1)"),
    ("quantized_relu", (6, 2, 0, 0.25), None, "quantized_relu(6,2,0.25)"),         # quirk
    ("quantized_relu", (4, 1), {"use_stochastic_rounding": True}, "quantized_relu(4,1,0,1)"),
    ("quantized_relu", (6, 2, 1, 0.125, True), None, "quantized_relu(6,2,1,0.125,1)"),
    ("quantized_tanh", (4,), None, "quantized_tanh(4)"),
    ("quantized_tanh", (4,), {"symmetric": True}, "quantized_tanh(4,1)"),           # quirk
    ("quantized_tanh", (4,), {"use_stochastic_rounding": True, "symmetric": True,
                              "use_real_tanh": True}, "quantized_tanh(4,1,1,1)"),
    ("quantized_sigmoid", (4,), None, "quantized_sigmoid(4)"),
    ("quantized_sigmoid", (6,), {"symmetric": True}, "quantized_sigmoid(6,1)"),
    ("quantized_sigmoid", (3,), {"use_real_sigmoid": True}, "quantized_sigmoid(3,1)"),  # quirk
    ("quantized_sigmoid", (5,), {"symmetric": True, "use_real_sigmoid": True,
                                 "use_stochastic_rounding": True}, "quantized_sigmoid(5,1,1,1)"),
    ("quantized_ulaw", (8,), None, "quantized_ulaw(8,0)"),
    ("quantized_ulaw", (4, 1, 1), None, "quantized_ulaw(4,1,1)"),
    ("quantized_ulaw", (8, 0, 0, 100.0), None, "quantized_ulaw(8,0,0,100.0)"),
    ("quantized_po2", (4,), None, "quantized_po2(4)"),
    ("quantized_po2", (4, 1), None, "quantized_po2(4,1)"),
    ("quantized_po2", (5, 2.5), None, "quantized_po2(5,2)"),                        # int() truncates
    ("quantized_po2", (5,), {"quadratic_approximation": True},
     "quantized_po2(5,quadratic_approximation=1)"),
    ("quantized_po2", (4, 4), {"use_stochastic_rounding": True}, "quantized_po2(4,4,1)"),
    ("quantized_relu_po2", (6, 2048), None, "quantized_relu_po2(6,2048)"),
    ("quantized_relu_po2", (6,), {"quadratic_approximation": True},
     "quantized_relu_po2(6,quadratic_approximation=1)"),
    ("quantized_relu_po2", (4, 4, 0.125), None, "quantized_relu_po2(4,4,0.125)"),
    ("quantized_relu_po2", (4,), {"negative_slope": 0.125}, "quantized_relu_po2(4,0.125)"),  # quirk
    ("binary", (), None, "binary()"),
    ("binary", (), {"alpha": "auto_po2"}, "binary(alpha='auto_po2')"),
    ("binary", (), {"use_01": True, "alpha": 2.0}, "binary(use_01=1,alpha=2.0)"),
    # QKeras prints str(bool) here (not int()): "use_stochastic_rounding=True"
    ("binary", (), {"use_stochastic_rounding": True}, "binary(use_stochastic_rounding=True)"),
    ("binary", (), {"alpha": "auto_po2", "scale_axis": 1, "elements_per_scale": 2},
     "binary(alpha='auto_po2',elements_per_scale=2,scale_axis=1)"),
    ("binary", (), {"alpha": "auto_po2", "min_po2_exponent": -4, "max_po2_exponent": 2},
     "binary(alpha='auto_po2',min_po2_exponent=-4,max_po2_exponent=2)"),
    ("stochastic_binary", (), None, "stochastic_binary()"),
    ("stochastic_binary", (), {"alpha": "auto_po2", "temperature": 8.0, "use_real_sigmoid": False},
     "stochastic_binary(alpha='auto_po2',temperature=8.0,use_real_sigmoid=0)"),
    ("ternary", (), None, "ternary()"),
    ("ternary", (), {"alpha": 1.0, "threshold": 0.33}, "ternary(alpha=1.0,threshold=0.33)"),
    ("ternary", (), {"alpha": "auto", "use_stochastic_rounding": True, "number_of_unrolls": 3},
     "ternary(alpha='auto',use_stochastic_rounding=1,number_of_unrolls=3)"),
    ("stochastic_ternary", (), None, "stochastic_ternary()"),
    ("stochastic_ternary", (), {"alpha": 2.0, "threshold": 0.2}, "stochastic_ternary(alpha=2.0,threshold=0.2)"),
    ("stochastic_ternary", (), {"alpha": "auto_po2", "temperature": 4.0, "use_real_sigmoid": False,
                                "number_of_unrolls": 7},
     "stochastic_ternary(alpha='auto_po2',temperature=4.0,use_real_sigmoid=0,number_of_unrolls=7)"),
    ("bernoulli", (), None, "bernoulli()"),
    ("bernoulli", (), {"alpha": "auto", "temperature": 3.0, "use_real_sigmoid": False},
     "bernoulli(alpha='auto',temperature=3.0,use_real_sigmoid=0)"),
]


@pytest.mark.parametrize("name, args, kwargs, expected",
                         [pytest.param(*c, id=_id(*c[:3])) for c in STR_CASES])
def test_str_exact(name, args, kwargs, expected):
    assert str(make(name, args, kwargs)) == expected


ROUNDTRIP = [
    ("quantized_bits", (4, 0, 1), {"alpha": "auto_po2"}),
    ("quantized_bits", (6, 2), {"keep_negative": False}),
    ("quantized_bits", (8, 3, 1), {"use_stochastic_rounding": True}),
    ("quantized_bits", (1, 0, 1), {"alpha": 1.0}),
    ("quantized_linear", (4, 1, 0), {"alpha": "auto"}),
    ("quantized_linear", (6, 2, 1), {"keep_negative": False}),
    ("quantized_relu", (4, 2), None),
    ("quantized_relu", (6, 2, 1), None),
    ("quantized_relu", (6, 2, 1, 0.125), None),
    ("quantized_tanh", (4,), None),
    ("quantized_tanh", (4,), {"use_stochastic_rounding": True, "symmetric": True,
                              "use_real_tanh": True}),
    ("quantized_sigmoid", (6,), {"symmetric": True}),
    ("quantized_ulaw", (4, 1, 1), None),
    ("quantized_ulaw", (8, 0, 0, 100.0), None),
    ("quantized_po2", (4, 1), None),
    ("quantized_po2", (5,), {"quadratic_approximation": True}),
    ("quantized_relu_po2", (6, 2048), None),
    ("quantized_relu_po2", (4, 4, 0.125), None),
    ("binary", (), {"alpha": "auto_po2"}),
    ("binary", (), {"use_01": True}),
    ("stochastic_binary", (), {"alpha": "auto_po2", "temperature": 8.0}),
    ("ternary", (), {"alpha": 1.0, "threshold": 0.33}),
    ("ternary", (), {"alpha": "auto", "number_of_unrolls": 3}),
    ("stochastic_ternary", (), {"alpha": "auto"}),
    ("bernoulli", (), {"alpha": "auto", "use_real_sigmoid": False}),
    # our fixes (QKeras raises in __str__): a string that parses back to the same config
    ("quantized_hswish", (8, 3, 0), None),
    ("quantized_hswish", (6, 2, 1), {"relu_shift": 2, "relu_upper_bound": 4}),
    ("quantized_linear", (3, 1), {"alpha": 2.0}),
]


@pytest.mark.parametrize("name, args, kwargs",
                         [pytest.param(*c, id=_id(*c)) for c in ROUNDTRIP])
def test_str_roundtrip(name, args, kwargs):
    q = make(name, args, kwargs)
    s = str(q)
    assert s.startswith(name + "(") and s.endswith(")"), s
    back = qz.get_quantizer(s)
    assert type(back) is type(q), (s, type(back))
    assert back.get_config() == q.get_config(), s


def test_str_hswish_works():
    s = str(qz.quantized_hswish())
    assert s.startswith("quantized_hswish(8,0,0"), s


def test_str_quantized_linear_numeric_alpha_works():
    s = str(qz.quantized_linear(3, 1, alpha=2.0))
    assert s.startswith("quantized_linear(3,1,1,"), s
    assert "alpha=2" in s, s


@pytest.mark.parametrize("text, key_values", [
    # third positional of quantized_relu is use_sigmoid
    ("quantized_relu(6,2,0.25)", {"use_sigmoid": 0.25, "negative_slope": 0.0}),
    # second positional of quantized_tanh is use_stochastic_rounding
    ("quantized_tanh(4,1)", {"use_stochastic_rounding": 1, "symmetric": False}),
    # second positional of quantized_sigmoid is symmetric
    ("quantized_sigmoid(3,1)", {"symmetric": 1, "use_real_sigmoid": False}),
    # second positional of quantized_relu_po2 is max_value
    ("quantized_relu_po2(4,0.125)", {"max_value": 0.125, "negative_slope": 0}),
    ("quantized_po2(5,2)", {"max_value": 2}),
])
def test_str_documented_quirks_reparse(text, key_values):
    cfg = qz.get_quantizer(text).get_config()
    for key, value in key_values.items():
        assert cfg[key] == value, (text, key, cfg[key])


def test_str_quirk_relu_slope_not_roundtrip():
    q = qz.quantized_relu(6, 2, 0, 0.25)
    assert qz.get_quantizer(str(q)).get_config() != q.get_config()


# ---------------------------------------------------------------------------------------------
# get_config / from_config
# ---------------------------------------------------------------------------------------------

DEFAULT_CONFIGS = {
    "quantized_bits": {"bits": 8, "integer": 0, "symmetric": 0, "alpha": None,
                       "keep_negative": True, "use_stochastic_rounding": False,
                       "qnoise_factor": 1.0, "post_training_scale": None},
    "quantized_linear": {"bits": 8, "integer": 0, "symmetric": 1, "alpha": None,
                         "keep_negative": True, "use_stochastic_rounding": False,
                         "qnoise_factor": 1.0},
    "quantized_relu": {"bits": 8, "integer": 0, "use_sigmoid": 0, "negative_slope": 0.0,
                       "use_stochastic_rounding": False, "relu_upper_bound": None,
                       "qnoise_factor": 1.0},
    "quantized_tanh": {"bits": 8, "symmetric": False, "use_stochastic_rounding": False,
                       "use_real_tanh": False},
    "quantized_sigmoid": {"bits": 8, "symmetric": False, "use_real_sigmoid": False,
                          "use_stochastic_rounding": False},
    "quantized_ulaw": {"bits": 8, "integer": 0, "symmetric": 0, "u": 255.0},
    "quantized_po2": {"bits": 8, "max_value": None, "use_stochastic_rounding": False,
                      "quadratic_approximation": False, "qnoise_factor": 1.0,
                      "log2_rounding": "rnd"},
    "quantized_relu_po2": {"bits": 8, "max_value": None, "negative_slope": 0,
                           "use_stochastic_rounding": False, "quadratic_approximation": False,
                           "qnoise_factor": 1.0, "log2_rounding": "rnd"},
    "quantized_hswish": {"bits": 8, "integer": 0, "symmetric": 0, "alpha": None,
                         "keep_negative": True, "use_stochastic_rounding": False,
                         "qnoise_factor": 1.0, "post_training_scale": None, "relu_shift": 3,
                         "relu_upper_bound": 6},
    "binary": {"use_01": False, "alpha": None, "use_stochastic_rounding": False},
    "stochastic_binary": {"alpha": None, "temperature": 6.0, "use_real_sigmoid": True},
    "ternary": {"alpha": None, "threshold": None, "use_stochastic_rounding": False,
                "number_of_unrolls": 5},
    "stochastic_ternary": {"alpha": None, "threshold": None, "temperature": 8.0,
                           "use_real_sigmoid": True, "number_of_unrolls": 5},
    "bernoulli": {"alpha": None},
}


@pytest.mark.parametrize("name", ALL_CLASSES)
def test_get_config_defaults_exact(name):
    cfg = make(name).get_config()
    assert set(cfg) == set(DEFAULT_CONFIGS[name])
    assert cfg == DEFAULT_CONFIGS[name]


def test_get_config_quantized_bits_drops_keys():
    q = qz.quantized_bits(4, 1, 0, alpha="auto_po2", scale_axis=1, use_ste=False, var_name="w",
                          use_variables=True, elements_per_scale=2, min_po2_exponent=-3,
                          max_po2_exponent=2)
    cfg = q.get_config()
    assert set(cfg) == set(DEFAULT_CONFIGS["quantized_bits"])
    assert cfg["alpha"] == "auto_po2"
    assert cfg["symmetric"] == True  # noqa: E712 - a string alpha forces symmetric
    for dropped in ("scale_axis", "use_ste", "var_name", "use_variables", "elements_per_scale",
                    "min_po2_exponent", "max_po2_exponent"):
        assert dropped not in cfg


def test_get_config_post_training_scale_is_a_list():
    q = qz.quantized_bits(4, 0, alpha="auto_po2", post_training_scale=np.array([[0.5, 2.0]]))
    cfg = q.get_config()
    assert cfg["post_training_scale"] == [[0.5, 2.0]]
    assert isinstance(cfg["post_training_scale"], list)
    back = qz.quantized_bits.from_config(cfg)
    np.testing.assert_array_equal(np.asarray(back.scale), [[0.5, 2.0]])


@pytest.mark.parametrize("name, kwargs, key, value", [
    ("quantized_relu", {"bits": 6, "integer": 2, "negative_slope": 0.25, "relu_upper_bound": 3.0,
                        "is_quantized_clip": False, "use_ste": False,
                        "enable_fast_inference": False}, "relu_upper_bound", 3.0),
    ("quantized_po2", {"bits": 5, "max_value": 4, "log2_rounding": "floor",
                       "use_ste": False}, "log2_rounding", "floor"),
    ("quantized_relu_po2", {"bits": 5, "negative_slope": 0.5, "qnoise_factor": 0.5},
     "negative_slope", 0.5),
    ("quantized_linear", {"bits": 5, "integer": 2, "alpha": "auto_po2", "scale_axis": 0},
     "alpha", "auto_po2"),
    ("binary", {"alpha": "auto", "scale_axis": 1, "elements_per_scale": 2}, "alpha", "auto"),
    ("quantized_hswish", {"bits": 6, "integer": 2, "relu_shift": 2, "relu_upper_bound": 4},
     "relu_upper_bound", 4),
])
def test_get_config_keys_non_default(name, kwargs, key, value):
    cfg = make(name, (), kwargs).get_config()
    assert set(cfg) == set(DEFAULT_CONFIGS[name])
    assert cfg[key] == value


FROM_CONFIG = [
    ("quantized_bits", (), None), ("quantized_bits", (4, 2, 1), {"alpha": 1.0}),
    ("quantized_bits", (4, 0), {"alpha": "auto_po2", "post_training_scale": np.array([[1.0]])}),
    ("quantized_bits", (5, 1, 0), {"keep_negative": False, "use_stochastic_rounding": True,
                                   "qnoise_factor": 0.5}),
    ("quantized_linear", (), None), ("quantized_linear", (4, 1, 0), {"alpha": "auto"}),
    ("quantized_relu", (), None), ("quantized_relu", (6, 2, 1, 0.125), {"relu_upper_bound": 2.0}),
    ("quantized_tanh", (), None), ("quantized_tanh", (4, True, True, True), None),
    ("quantized_sigmoid", (), None), ("quantized_sigmoid", (5, True, True, True), None),
    ("quantized_ulaw", (), None), ("quantized_ulaw", (4, 1, 1, 100.0), None),
    ("quantized_po2", (), None), ("quantized_po2", (5, 4, False, True, "floor", 0.5), None),
    ("quantized_relu_po2", (), None), ("quantized_relu_po2", (5, 2.0, 0.25), None),
    ("quantized_hswish", (), None), ("quantized_hswish", (6, 2, 1), {"relu_shift": 2}),
    ("binary", (), None), ("binary", (True, "auto_po2"), None),
    ("stochastic_binary", (), None), ("stochastic_binary", ("auto", 3.0, False), None),
    ("ternary", (), None), ("ternary", (2.0, 0.4), None), ("ternary", ("auto_po2",), None),
    ("stochastic_ternary", (), None), ("stochastic_ternary", ("auto", None, 4.0, False, 3), None),
    ("bernoulli", (), None), ("bernoulli", ("auto_po2", 3.0, False), None),
]


@pytest.mark.parametrize("name, args, kwargs",
                         [pytest.param(*c, id=_id(*c)) for c in FROM_CONFIG])
def test_from_config_roundtrip(name, args, kwargs):
    q = make(name, args, kwargs)
    cfg = q.get_config()
    back = type(q).from_config(dict(cfg))
    assert type(back) is type(q)
    assert back.get_config() == cfg
    if name != "bernoulli":  # bernoulli's config holds only alpha (§3.10)
        assert str(back) == str(q)


# ---------------------------------------------------------------------------------------------
# get_quantizer
# ---------------------------------------------------------------------------------------------

def test_get_quantizer_none():
    assert qz.get_quantizer(None) is None


def test_get_quantizer_string_with_arguments():
    q = qz.get_quantizer("quantized_bits(4,0,1,alpha='auto_po2')")
    assert isinstance(q, qz.quantized_bits)
    assert q.get_config() == qz.quantized_bits(4, 0, 1, alpha="auto_po2").get_config()
    q = qz.get_quantizer("ternary(alpha=1.0, threshold=0.33)")
    assert isinstance(q, qz.ternary)
    assert q.get_config() == qz.ternary(alpha=1.0, threshold=0.33).get_config()
    q = qz.get_quantizer("quantized_relu_po2(6, quadratic_approximation=True)")
    assert q.get_config() == qz.quantized_relu_po2(6, quadratic_approximation=True).get_config()
    q = qz.get_quantizer("quantized_relu(6,2,1)")
    assert q.get_config()["use_sigmoid"] == 1


@pytest.mark.parametrize("name", ALL_CLASSES)
def test_get_quantizer_class_name_without_parentheses(name):
    q = qz.get_quantizer(name)
    assert type(q) is getattr(qz, name)
    assert q.get_config() == make(name).get_config()


@pytest.mark.parametrize("name", ALL_CLASSES)
def test_get_quantizer_dict(name):
    ref = make(name)
    q = qz.get_quantizer({"class_name": name, "config": ref.get_config()})
    assert type(q) is type(ref)
    assert q.get_config() == ref.get_config()


def test_get_quantizer_dict_non_default():
    cfg = qz.quantized_bits(4, 1, 1, alpha="auto_po2").get_config()
    q = qz.get_quantizer({"class_name": "quantized_bits", "config": cfg})
    assert str(q) == "quantized_bits(4,1,1,alpha='auto_po2')"


def test_get_quantizer_object_and_callable_returned_as_is():
    q = qz.quantized_relu(4)
    assert qz.get_quantizer(q) is q

    def my_quantizer(x):
        return x

    assert qz.get_quantizer(my_quantizer) is my_quantizer
    lam = lambda x: x  # noqa: E731
    assert qz.get_quantizer(lam) is lam


@pytest.mark.parametrize("name", FUNCTIONS)
def test_get_quantizer_function_names(name):
    f = qz.get_quantizer(name)
    assert f is getattr(qz, name)
    assert callable(f)


def test_get_quantizer_keras_activation_names():
    x = np.array([-1.0, 0.5, 2.0], np.float32)
    relu = qz.get_quantizer("relu")
    assert callable(relu)
    np.testing.assert_array_equal(np.asarray(relu(x)), [0.0, 0.5, 2.0])
    linear = qz.get_quantizer("linear")
    assert callable(linear)
    np.testing.assert_array_equal(np.asarray(linear(x)), x)
    softmax = qz.get_quantizer("softmax")
    assert callable(softmax)
    s = np.asarray(softmax(x.reshape(1, 3)), np.float64)
    np.testing.assert_allclose(s.sum(axis=-1), 1.0, rtol=1e-6)
    assert np.all(np.diff(s[0]) > 0)


@pytest.mark.parametrize("text, suggestion", [
    ("quantized_bit(4)", "quantized_bits"),
    ("quantised_relu(4,0)", "quantized_relu"),
    ("ternery", "ternary"),
    ("quantized_po3(4)", "quantized_po2"),
])
def test_get_quantizer_unknown_name_suggests(text, suggestion):
    with pytest.raises(ValueError) as err:
        qz.get_quantizer(text)
    msg = str(err.value)
    assert suggestion in msg, msg
    assert text.split("(")[0] in msg, msg


def test_get_quantizer_unknown_name_no_close_match():
    with pytest.raises(ValueError):
        qz.get_quantizer("zzzz_not_a_quantizer(3)")


@pytest.mark.parametrize("bad", [42, 3.5, ["quantized_bits"]])
def test_get_quantizer_uninterpretable(bad):
    with pytest.raises(ValueError):
        qz.get_quantizer(bad)


# ---------------------------------------------------------------------------------------------
# max() / min() / range() (§3; QKeras tests/min_max_test.py, tests/range_test.py)
# ---------------------------------------------------------------------------------------------

def _eq(a, b):
    return float(np.asarray(a)) == float(b)


def test_min_max_binary_ternary():  # min_max_test.py::test_binary, ::test_ternary
    for q in (qz.binary(alpha=1.0), qz.stochastic_binary(alpha=1.0), qz.ternary(alpha=1.0),
              qz.stochastic_ternary(alpha=1.0)):
        assert _eq(q.min(), -1.0) and _eq(q.max(), 1.0), str(q)


_QB_MINMAX = {
    (1, 0): [-1.0, 1.0], (2, 0): [-1.0, 1.0], (3, 0): [-1.0, 1.0], (4, 0): [-1.0, 1.0],
    (5, 0): [-1.0, 1.0], (6, 0): [-1.0, 1.0], (7, 0): [-1.0, 1.0], (8, 0): [-1.0, 1.0],
    (1, 1): [-1.0, 1.0], (2, 1): [-2.0, 2.0], (3, 1): [-2.0, 2.0], (4, 1): [-2.0, 2.0],
    (5, 1): [-2.0, 2.0], (6, 1): [-2.0, 2.0], (7, 1): [-2.0, 2.0], (8, 1): [-2.0, 2.0],
    (3, 2): [-4.0, 4.0], (4, 2): [-4.0, 4.0], (5, 2): [-4.0, 4.0], (6, 2): [-4.0, 4.0],
    (7, 2): [-4.0, 4.0], (8, 2): [-4.0, 4.0],
}


@pytest.mark.parametrize("bits, integer", sorted(_QB_MINMAX))
def test_min_max_quantized_bits(bits, integer):  # min_max_test.py::test_quantized_bits
    q = qz.quantized_bits(bits, integer, 1)
    lo, hi = _QB_MINMAX[(bits, integer)]
    assert _eq(q.min(), lo) and _eq(q.max(), hi)


@pytest.mark.parametrize("alpha", [None, 2.0])
@pytest.mark.parametrize("symmetric, keep_negative", [(True, True), (False, True), (False, False)])
@pytest.mark.parametrize("bits", [1, 8])
def test_min_max_quantized_linear(bits, symmetric, keep_negative, alpha):
    # min_max_test.py::test_quantized_linear
    q = qz.quantized_linear(bits=bits, symmetric=symmetric, keep_negative=keep_negative,
                            alpha=alpha)
    qmin, qmax = float(np.asarray(q.min())), float(np.asarray(q.max()))
    assert float(q(-1000.0)) == qmin
    assert float(q(1000.0)) == qmax
    assert float(q(qmin)) == qmin
    assert float(q(qmax)) == qmax
    if bits != 1:
        middle = (qmax + qmin) / 2.0
        assert float(q(middle)) != qmax
        assert float(q(middle)) != qmin


_PO2 = {3: [-2, 2], 4: [-8, 8], 5: [-128, 128], 6: [-32768, 32768]}
_PO2_MAX_VALUE = {
    (3, 1): [-1.0, 1.0], (3, 2): [-2, 2], (3, 4): [-4, 4], (4, 1): [-1.0, 1.0], (4, 2): [-2, 2],
    (4, 4): [-4, 4], (4, 8): [-8, 8], (5, 1): [-1.0, 1.0], (5, 2): [-2, 2], (5, 4): [-4, 4],
    (5, 8): [-8, 8], (5, 16): [-16, 16], (6, 1): [-1.0, 1.0], (6, 2): [-2, 2], (6, 4): [-4, 4],
    (6, 8): [-8, 8], (6, 16): [-16, 16], (6, 32): [-32, 32]}
_PO2_QUAD = {4: [-4, 4], 5: [-64, 64], 6: [-16384, 16384]}
_RELU_PO2_QUAD = {4: [0.00390625, 64], 5: [1.52587890625e-05, 16384],
                  6: [2.3283064365386963e-10, 1073741824]}


def test_min_max_po2():  # min_max_test.py::test_po2
    for b in range(3, 7):
        q = qz.quantized_po2(b)
        assert _eq(q.min(), _PO2[b][0]) and _eq(q.max(), _PO2[b][1]), b
        for i in range(0, b):
            q = qz.quantized_po2(b, 2 ** i)
            lo, hi = _PO2_MAX_VALUE[(b, 2 ** i)]
            assert _eq(q.min(), lo) and _eq(q.max(), hi), (b, 2 ** i)
    for b in range(4, 7):
        q = qz.quantized_po2(b, quadratic_approximation=True)
        assert _eq(q.min(), _PO2_QUAD[b][0]) and _eq(q.max(), _PO2_QUAD[b][1]), b
        q = qz.quantized_relu_po2(b, quadratic_approximation=True)
        assert _eq(q.min(), _RELU_PO2_QUAD[b][0]) and _eq(q.max(), _RELU_PO2_QUAD[b][1]), b


MIN_MAX_SPEC = [
    # (name, args, kwargs, min, max) per quantizers.md §3
    ("quantized_bits", (4, 0, 0), {"keep_negative": False}, 0.0, 1.0),
    ("quantized_bits", (1, 0), None, -1.0, 1.0),
    ("quantized_bits", (4, 2), {"alpha": "auto_po2"}, -4.0, 4.0),   # ignores alpha
    ("quantized_bits", (8, 3), {"alpha": 0.25}, -8.0, 8.0),
    ("quantized_linear", (8,), None, -127 / 128, 127 / 128),        # clip bound * 2**-7
    ("quantized_linear", (4, 1, 0), None, -2.0, 1.75),
    ("quantized_linear", (1,), None, -0.5, 0.5),                    # sign mode
    ("quantized_relu", (4, 0), None, 0.0, 1.0),
    ("quantized_relu", (4, 2), None, 0.0, 4.0),
    ("quantized_relu", (6, 2, 0, 0.25), None, -1.0, 4.0),
    ("quantized_relu", (1, 0, 0, 0.5), None, -1.0, 1.0),
    ("quantized_tanh", (4,), None, -1.0, 0.875),
    ("quantized_tanh", (4,), {"symmetric": True}, -0.875, 0.875),
    ("quantized_sigmoid", (4,), None, 0.0, 0.9375),
    ("quantized_sigmoid", (4,), {"symmetric": True}, 0.0625, 0.9375),
    ("quantized_ulaw", (8, 0), None, -1.0, 1.0),
    ("quantized_ulaw", (4, 2), None, -4.0, 4.0),
    ("quantized_ulaw", (1, 3), None, -1.0, 1.0),
    ("quantized_po2", (4, 2.5), None, -2.5, 2.5),
    ("quantized_relu_po2", (4,), None, 2.0 ** -8, 128.0),
    ("quantized_relu_po2", (4,), {"negative_slope": 0.5}, -4.0, 128.0),
    ("quantized_relu_po2", (4, 2.5), None, 2.0 ** -8, 2.5),
    ("quantized_relu_po2", (4, 0.5), None, 2.0 ** -16, 1.0),
    ("binary", (), None, -1.0, 1.0),
    ("binary", (), {"use_01": True}, 0.0, 1.0),
    ("binary", (), {"alpha": "auto"}, -1.0, 1.0),
    ("binary", (), {"alpha": 2.5}, -2.5, 2.5),
    ("binary", (), {"alpha": 0.5}, -1.0, 1.0),
    ("stochastic_binary", (), {"alpha": "auto_po2"}, -1.0, 1.0),
    ("ternary", (), {"alpha": 3.0}, -3.0, 3.0),
    ("ternary", (), {"alpha": "auto"}, -1.0, 1.0),
    ("stochastic_ternary", (), {"alpha": 2.0}, -2.0, 2.0),
    ("bernoulli", (), None, 0.0, 1.0),
    ("bernoulli", (), {"alpha": 2.0}, 0.0, 2.0),
    # hswish: QKeras's min() crashes; ours returns the quantized parabola minimum -3**2/(4*6)
    ("quantized_hswish", (8, 3, 0), None, -0.375, 8.0),
    ("quantized_hswish", (8, 0, 0), None, -0.375, 1.0),
]


@pytest.mark.parametrize("name, args, kwargs, lo, hi",
                         [pytest.param(*c, id=_id(*c[:3])) for c in MIN_MAX_SPEC])
def test_min_max_spec(name, args, kwargs, lo, hi):
    q = make(name, args, kwargs)
    assert _eq(q.min(), lo), (str(q), q.min(), lo)
    assert _eq(q.max(), hi), (str(q), q.max(), hi)


_RELU_RANGE_6_1 = [i / 32 for i in range(64)]


@pytest.mark.parametrize("bits, integer, expected", [
    (3, 0, [0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875]),
    (3, 1, [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]),
    (3, 2, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]),
    (3, 3, [0, 1, 2, 3, 4, 5, 6, 7]),
    (6, 1, _RELU_RANGE_6_1),
])
def test_range_quantized_relu(bits, integer, expected):  # range_test.py
    np.testing.assert_array_equal(np.asarray(qz.quantized_relu(bits, integer).range()), expected)


_BITS_RANGE_6_1 = [i / 16 for i in range(32)] + [-2 + i / 16 for i in range(32)]


@pytest.mark.parametrize("bits, integer, expected", [
    (3, 0, [0.0, 0.25, 0.5, 0.75, -1.0, -0.75, -0.5, -0.25]),
    (3, 1, [0.0, 0.5, 1.0, 1.5, -2.0, -1.5, -1.0, -0.5]),
    (3, 2, [0.0, 1.0, 2.0, 3.0, -4.0, -3.0, -2.0, -1.0]),
    (3, 3, [0.0, 2.0, 4.0, 6.0, -8.0, -6.0, -4.0, -2.0]),
    (6, 1, _BITS_RANGE_6_1),
])
def test_range_quantized_bits(bits, integer, expected):  # range_test.py
    np.testing.assert_array_equal(np.asarray(qz.quantized_bits(bits, integer).range()), expected)


@pytest.mark.parametrize("args, kwargs, expected", [
    ((3, 0), None, [0, 0.25, 0.5, 0.75, -0.75, -0.5, -0.25]),
    ((3, 0, 0), None, [0, 0.25, 0.5, 0.75, -1.0, -0.75, -0.5, -0.25]),
    ((1,), None, [0.5, -0.5]),
])
def test_range_quantized_linear(args, kwargs, expected):
    # §3.2: range() = qs*[0..hi, lo..-1]; sign mode: [max, min]
    q = qz.quantized_linear(*args, **(kwargs or {}))
    np.testing.assert_array_equal(np.asarray(q.range(), np.float64).reshape(-1), expected)


def test_quantized_linear_scales():
    q = qz.quantized_linear(8, 3)
    assert float(np.asarray(q.data_type_scale)) == 2.0 ** -4
    assert float(np.asarray(q.scale)) == 1.0
    q = qz.quantized_linear(3, 1, alpha=2.0)
    assert float(np.asarray(q.data_type_scale)) == 0.5
    assert float(np.asarray(q.scale)) == 2.0


# ---------------------------------------------------------------------------------------------
# bits, read-only attributes
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, args, bits", [
    ("quantized_bits", (6,), 6), ("quantized_bits", (), 8), ("quantized_linear", (5,), 5),
    ("quantized_relu", (4,), 4), ("quantized_tanh", (3,), 3), ("quantized_sigmoid", (7,), 7),
    ("quantized_ulaw", (6,), 6), ("quantized_po2", (5,), 5), ("quantized_relu_po2", (6,), 6),
    ("quantized_hswish", (7,), 7), ("binary", (), 1), ("stochastic_binary", (), 1),
    ("ternary", (), 2), ("stochastic_ternary", (), 2), ("bernoulli", (), 1),
])
def test_bits_attribute(name, args, bits):
    assert make(name, args).bits == bits


@pytest.mark.parametrize("attr", ["bits", "integer", "keep_negative", "use_stochastic_rounding",
                                  "scale_axis", "use_variables"])
def test_quantized_linear_read_only_properties(attr):
    q = qz.quantized_linear(4, 1)
    with pytest.raises(AttributeError):
        setattr(q, attr, getattr(q, attr))


# ---------------------------------------------------------------------------------------------
# _set_trainable_parameter (§1.2) and update_qnoise_factor
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, args, kwargs, expected_str", [
    ("quantized_bits", (4, 0, 1), None, "quantized_bits(4,0,1,alpha='auto_po2')"),
    ("quantized_bits", (4, 0, 0), None, "quantized_bits(4,0,1,alpha='auto_po2')"),
    ("quantized_bits", (6, 2, 0), {"keep_negative": False},
     "quantized_bits(6,2,1,keep_negative=False,alpha='auto_po2')"),
    ("quantized_linear", (4,), None, "quantized_linear(4,0,1,alpha='auto_po2')"),
    ("quantized_linear", (4, 0, 0), None, "quantized_linear(4,0,1,alpha='auto_po2')"),
    ("binary", (), None, "binary(alpha='auto_po2')"),
    ("stochastic_binary", (), None, "stochastic_binary(alpha='auto_po2')"),
    ("ternary", (), None, "ternary(alpha='auto_po2')"),
    ("stochastic_ternary", (), None, "stochastic_ternary(alpha='auto_po2')"),
    ("bernoulli", (), None, "bernoulli(alpha='auto_po2')"),
])
def test_set_trainable_parameter_alpha_none(name, args, kwargs, expected_str):
    q = make(name, args, kwargs)
    q._set_trainable_parameter()
    assert q.alpha == "auto_po2"
    assert str(q) == expected_str
    cfg = q.get_config()
    assert cfg["alpha"] == "auto_po2"
    if "symmetric" in cfg:
        assert cfg["symmetric"] == True  # noqa: E712


@pytest.mark.parametrize("name, args, kwargs", [
    ("quantized_bits", (4, 0, 1), {"alpha": 1}),
    ("quantized_bits", (4, 0, 0), {"alpha": 1.0}),
    ("quantized_bits", (4, 0, 1), {"alpha": "auto"}),
    ("quantized_linear", (4,), {"alpha": "auto"}),
    ("binary", (), {"alpha": 1.0}),
    ("ternary", (), {"alpha": "auto"}),
    ("bernoulli", (), {"alpha": 2.0}),
    # other quantizers: no-op
    ("quantized_relu", (4,), None),
    ("quantized_relu", (6, 2, 1, 0.25), None),
    ("quantized_tanh", (4,), None),
    ("quantized_sigmoid", (4,), None),
    ("quantized_ulaw", (8,), None),
    ("quantized_po2", (4,), None),
    ("quantized_relu_po2", (4,), None),
])
def test_set_trainable_parameter_noop(name, args, kwargs):
    q = make(name, args, kwargs)
    s, cfg = str(q), q.get_config()
    q._set_trainable_parameter()
    assert str(q) == s
    assert q.get_config() == cfg


def test_set_trainable_parameter_alpha_1_str():
    q = qz.quantized_bits(4, 0, 1, alpha=1)
    q._set_trainable_parameter()
    assert str(q) == "quantized_bits(4,0,1,alpha=1)"


@pytest.mark.parametrize("name", ["quantized_bits", "quantized_linear", "quantized_relu",
                                  "quantized_po2", "quantized_relu_po2", "quantized_hswish"])
def test_update_qnoise_factor(name):
    q = make(name, (4,))
    assert float(q.qnoise_factor) == 1.0
    q.update_qnoise_factor(0.25)
    assert float(q.qnoise_factor) == 0.25
    assert float(q.get_config()["qnoise_factor"]) == 0.25
    q.update_qnoise_factor(0.0)
    assert float(q.qnoise_factor) == 0.0


@pytest.mark.parametrize("name", ["quantized_bits", "quantized_relu", "quantized_po2"])
def test_update_qnoise_factor_with_variables(name):
    q = make(name, (4,), {"use_variables": True})
    q.update_qnoise_factor(0.5)
    assert float(q.qnoise_factor) == 0.5
    assert float(q.get_config()["qnoise_factor"]) == 0.5


def test_qnoise_factor_constructor_in_config():
    q = qz.quantized_bits(4, qnoise_factor=0.5)
    assert float(q.qnoise_factor) == 0.5
    assert q.get_config()["qnoise_factor"] == 0.5
