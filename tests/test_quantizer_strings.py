"""Tests for qnn_ext/quantizer_strings.py (QKeras safe_eval grammar, quantizers.md §1.1).

The module is loaded straight from its file so these tests run without the C extension and without
importing qnn_ext/__init__.py.
"""

import dataclasses
import importlib.util
import math
import pathlib
import pickle
import sys
import tokenize
import traceback

import pytest
from hypothesis import given, settings, strategies as st

_PATH = pathlib.Path(__file__).resolve().parent.parent / "qnn_ext" / "quantizer_strings.py"
_NAME = "_qnn_ext_quantizer_strings_under_test"
_spec = importlib.util.spec_from_file_location(_NAME, _PATH)
qs = importlib.util.module_from_spec(_spec)
sys.modules[_NAME] = qs  # pickle finds the exception class by module name
_spec.loader.exec_module(qs)

parse = qs.parse_quantizer_string
ParsedCall = qs.ParsedCall
QuantizerStringError = qs.QuantizerStringError

# Deterministic, no example database written into the repository, well under the time budget.
_FAST = dict(deadline=None, database=None, derandomize=True)


def same(a, b):
    """Exact comparison that tells 1 from 1.0 from True, -0.0 from 0.0 and matches nan with nan."""
    return repr(a) == repr(b)


def call(name, args=(), kwargs=None, has_call=True):
    return ParsedCall(name, tuple(args), dict(kwargs or {}), has_call)


# --------------------------------------------------------------------------------------------
# The examples of quantizers.md §1.1

@pytest.mark.parametrize("text, expected", [
    ("quantized_relu(3)", call("quantized_relu", [3])),
    ("quantized_bits(4,0,1,alpha='auto_po2')",
     call("quantized_bits", [4, 0, 1], {"alpha": "auto_po2"})),
    ("quantized_relu(6,2,1)", call("quantized_relu", [6, 2, 1])),
    ("quantized_po2(4,1)", call("quantized_po2", [4, 1])),
    ("binary", call("binary", has_call=False)),
    ("ternary(alpha=1.0, threshold=0.33)", call("ternary", [], {"alpha": 1.0, "threshold": 0.33})),
    ("quantized_relu_po2(6, quadratic_approximation=True)",
     call("quantized_relu_po2", [6], {"quadratic_approximation": True})),
])
def test_spec_examples(text, expected):
    result = parse(text)
    assert result == expected
    assert same(result, expected)  # also checks value types (1 vs 1.0 vs True)


def test_result_is_a_frozen_dataclass():
    result = parse("quantized_po2(4,1)")
    fields = [f.name for f in dataclasses.fields(ParsedCall)]
    assert fields == ["name", "args", "kwargs", "has_call"]
    assert isinstance(result.args, tuple) and isinstance(result.kwargs, dict)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.name = "binary"


# --------------------------------------------------------------------------------------------
# Value types, in QKeras's order of trial

@pytest.mark.parametrize("token, value", [
    ("True", True), ("False", False),
    ("0", 0), ("4", 4), ("-3", -3), ("+3", 3), ("1_000", 1000), ("007", 7),
    ("12345678901234567890123", 12345678901234567890123),
    ("0.5", 0.5), ("-1.25", -1.25), ("1e-3", 0.001), ("2.", 2.0), (".5", 0.5), ("1E3", 1000.0),
    ("-0.0", -0.0), ("inf", math.inf), ("-inf", -math.inf), ("Infinity", math.inf),
    ("nan", math.nan), ("NaN", math.nan),
    ("None", None),
    ("[1 2]", [1, 2]), ("[0.5 1.0]", [0.5, 1.0]), ("[-1 2.5  3]", [-1, 2.5, 3]), ("[ 4 ]", [4]),
    ("[]", []),
    ("'auto_po2'", "auto_po2"), ('"auto"', "auto"), ("'a b'", "a b"), ("''", ""),
    ("'3'", "3"), ("'True'", "True"), ("'None'", "None"), ("'[1 2]'", "[1 2]"),
])
def test_value_types(token, value):
    assert same(parse(f"f(v={token})").kwargs, {"v": value})
    if not any(ch.isspace() for ch in token):  # positional tokens cannot hold whitespace
        assert same(parse(f"f({token})").args, (value,))


def test_bool_is_exact_and_case_sensitive():
    # Only the exact words are bools; anything else falls through to the string rule.
    assert parse("f(true)").args == ("ru",)
    assert parse("f(TRUE)").args == ("RU",)
    assert parse("f(Truex)").args == ("rue",)


def test_number_lists_only_hold_numbers():
    # A list element that is not a number makes the whole value a (stripped) string.
    assert parse("f(v=[1 x])").kwargs == {"v": "1 x"}
    assert parse("f(v=[True False])").kwargs == {"v": "True False"}
    assert parse("f(v=[[1 2]])").kwargs == {"v": "[1 2]"}


def test_numbers_accept_what_python_int_and_float_accept():
    assert same(parse("f(\u0663)").args, (3,))        # ARABIC-INDIC DIGIT THREE, as int() does
    assert same(parse("f(1_0.5)").args, (10.5,))
    assert parse("f(0x10)").args == ("x1",)           # int() is base 10 only, so this is a string


def test_mixed_call():
    result = parse("f(1, 2.5, True, None, 'a', x=[1 2], y=False, z='q')")
    assert same(result, call("f", [1, 2.5, True, None, "a"],
                             {"x": [1, 2], "y": False, "z": "q"}))
    assert list(result.kwargs) == ["x", "y", "z"]


# --------------------------------------------------------------------------------------------
# QKeras quirks that are kept

def test_unquoted_string_loses_first_and_last_character():
    assert parse("quantized_bits(4,0,1,alpha=auto_po2)").kwargs == {"alpha": "uto_po"}
    assert parse("f(alpha=x)").kwargs == {"alpha": ""}
    assert parse("f(alpha=)").kwargs == {"alpha": ""}
    assert parse("f(a=b=c)").kwargs == {"a": "="}        # split at the first "="


def test_bare_name_has_no_call():
    assert parse("quantized_relu") == call("quantized_relu", has_call=False)
    assert parse("quantized_relu()") == call("quantized_relu")
    assert parse("quantized_relu(  )") == call("quantized_relu")


@pytest.mark.parametrize("text", [
    "quantized_bits(4,0,1,alpha=f(1))",
    "quantized_bits(quantized_po2(4))",
    "quantized_bits((",                 # nothing after the name is checked, as in QKeras
    "quantized_bits(4,,(,=)",
])
def test_nested_parentheses_drop_all_arguments(text):
    assert parse(text) == call("quantized_bits", has_call=False)


def test_no_quoting_inside_the_grammar():
    # A comma inside quotes still separates arguments, exactly as in QKeras.
    assert parse("f('a,b')").args == ("", "")
    with pytest.raises(QuantizerStringError, match="positional argument follows keyword"):
        parse("f(alpha='a,b')")


# --------------------------------------------------------------------------------------------
# Whitespace

def test_whitespace_around_arguments_is_stripped():
    assert same(parse("ternary( alpha = 1.0 ,threshold=0.33 )"),
                call("ternary", [], {"alpha": 1.0, "threshold": 0.33}))
    assert same(parse("f(\t4\n,\n x =\tTrue )"), call("f", [4], {"x": True}))
    assert same(parse("f(flag=False )").kwargs, {"flag": False})  # QKeras gave "als" here
    assert same(parse("f(s=' a ')").kwargs, {"s": " a "})        # quotes protect inner spaces
    assert same(parse("f(s='a b', v=[1 2])").kwargs, {"s": "a b", "v": [1, 2]})


def test_whitespace_after_closing_parenthesis_is_allowed():
    assert parse("quantized_relu(3)  \n") == call("quantized_relu", [3])


# --------------------------------------------------------------------------------------------
# Errors

def test_error_message_format_and_attributes():
    with pytest.raises(QuantizerStringError) as info:
        parse("quantized_bits(4,,0)")
    error = info.value
    assert str(error) == "quantizer string 'quantized_bits(4,,0)': empty argument at position 17"
    assert error.args == (str(error),)
    assert error.position == 17
    assert error.text == "quantized_bits(4,,0)"
    assert error.offset == 18  # SyntaxError's 1-based column
    assert isinstance(error, ValueError) and isinstance(error, SyntaxError)


def test_error_is_catchable_as_value_error_and_syntax_error():
    assert issubclass(QuantizerStringError, ValueError)
    assert issubclass(QuantizerStringError, SyntaxError)
    with pytest.raises(ValueError):
        parse("f(,)")
    with pytest.raises(SyntaxError):
        parse("f(a=1, 2)")


def test_error_traceback_and_pickle():
    try:
        parse("f(4,,0)")
    except QuantizerStringError as error:
        shown = "".join(traceback.format_exception_only(type(error), error))
        copy = pickle.loads(pickle.dumps(error))
    assert "QuantizerStringError: quantizer string 'f(4,,0)': empty argument at position 4" in shown
    assert "f(4,,0)\n" in shown and "    ^\n" in shown   # caret under the second comma
    assert type(copy) is QuantizerStringError
    assert str(copy) == "quantizer string 'f(4,,0)': empty argument at position 4"
    assert copy.position == 4


def test_double_quotes_in_message_when_text_has_single_quotes():
    with pytest.raises(QuantizerStringError) as info:
        parse("f(alpha='x',,)")
    assert str(info.value) == (
        "quantizer string \"f(alpha='x',,)\": empty argument at position 12")


@pytest.mark.parametrize("text, what, position", [
    # unbalanced parentheses
    ("quantized_bits(4", "unbalanced parentheses: missing ')'", 16),
    ("quantized_bits(", "unbalanced parentheses: missing ')'", 15),
    ("binary)", "unbalanced parentheses: ')' without '('", 6),
    ("a)(1)", "unbalanced parentheses: ')' without '('", 1),
    ("f(4))", "unbalanced parentheses: ')' without '('", 4),
    # text after the closing parenthesis
    ("f(4) x", "unexpected text after ')'", 5),
    ("f(4),", "unexpected text after ')'", 4),
    # names
    ("", "empty name", 0),
    ("(4)", "empty name", 0),
    ("4bits(3)", "name '4bits' is not an identifier", 0),
    ("quantized bits", "name 'quantized bits' is not an identifier", 9),
    ("quantized_bits (4)", "name 'quantized_bits ' is not an identifier", 14),
    (" binary", "name ' binary' is not an identifier", 0),
    ("quant-bits", "name 'quant-bits' is not an identifier", 5),
    ("4x(f(1))", "name '4x' is not an identifier", 0),  # checked for nested calls too
    # empty arguments
    ("quantized_bits(4,,0)", "empty argument", 17),
    ("f(4, ,0)", "empty argument", 5),
    ("f(,4)", "empty argument", 2),
    ("f(4,)", "empty argument", 4),
    ("f(,)", "empty argument", 2),
    ("f(4,", "unbalanced parentheses: missing ')'", 4),
    # keywords
    ("f(=3)", "'=' without a keyword", 2),
    ("f(4,  = 3)", "'=' without a keyword", 6),
    ("f(a b=1)", "keyword 'a b' is not an identifier", 2),
    ("f( 'a'=1)", "keyword \"'a'\" is not an identifier", 3),
    ("f(a=1,a=2)", "duplicate keyword argument 'a'", 6),
    ("f(a=1, b=2,  a=3)", "duplicate keyword argument 'a'", 13),
    # positional arguments cannot contain whitespace (QKeras's pyparsing grammar rejects it)
    ("quantized_bits(4 0 1)", "whitespace inside positional argument", 16),
    ("f( 'a b' ,1)", "whitespace inside positional argument", 5),
    ("f([1 2])", "whitespace inside positional argument", 4),
    # order
    ("f(a=1,2)", "positional argument follows keyword argument", 6),
    ("ternary(alpha=1.0, 0.33)", "positional argument follows keyword argument", 19),
])
def test_errors_name_the_position(text, what, position):
    with pytest.raises(QuantizerStringError) as info:
        parse(text)
    assert str(info.value) == f"quantizer string {text!r}: {what} at position {position}"
    assert info.value.position == position


@pytest.mark.parametrize("value, type_name", [
    (None, "NoneType"), (b"binary", "bytes"), (3, "int"), (["binary"], "list"),
])
def test_non_str_input_is_a_type_error(value, type_name):
    with pytest.raises(TypeError) as info:
        parse(value)
    assert str(info.value) == f"quantizer string must be str, not {type_name}"


def test_str_subclass_is_accepted():
    class Text(str):
        pass

    assert parse(Text("quantized_relu(3)")) == call("quantized_relu", [3])


# --------------------------------------------------------------------------------------------
# close_names

def test_close_names():
    names = ["quantized_bits", "quantized_relu", "quantized_po2", "quantized_relu_po2", "binary",
             "ternary", "stochastic_binary"]
    assert qs.close_names("quantized_bit", names) == [
        "quantized_bits", "quantized_po2", "quantized_relu"]
    assert qs.close_names("quantized_bit", names, n=1) == ["quantized_bits"]
    assert qs.close_names("quantized_rel", names, n=2) == ["quantized_relu", "quantized_relu_po2"]
    assert qs.close_names("ternery", iter(names)) == ["ternary"]
    assert qs.close_names("zzz", names) == []


# --------------------------------------------------------------------------------------------
# No code evaluation anywhere in the module

def test_module_uses_no_code_evaluation():
    with open(_PATH, "rb") as source:
        names = {tok.string for tok in tokenize.tokenize(source.readline)
                 if tok.type == tokenize.NAME}
    assert not names & {"eval", "exec", "compile", "literal_eval", "__import__", "ast"}


# --------------------------------------------------------------------------------------------
# Properties

def _parses_or_fails_cleanly(text):
    try:
        result = parse(text)
    except QuantizerStringError as error:
        assert 0 <= error.position <= len(text)
        assert str(error).startswith(f"quantizer string {text!r}: ")
        assert str(error).endswith(f" at position {error.position}")
        return
    assert isinstance(result, ParsedCall)
    assert result.name == text.split("(")[0]
    assert result.name.isidentifier()
    assert result.has_call == (text.count("(") == 1)
    if not result.has_call:
        assert result.args == () and result.kwargs == {}


@settings(max_examples=200, **_FAST)
@given(st.text(max_size=40))
def test_random_text_parses_or_raises_quantizer_string_error(text):
    _parses_or_fails_cleanly(text)


_TOKENS = ["quantized_bits", "binary", "q", "alpha", "(", ")", "(", ")", ",", ",", "=", "=", " ",
           "\t", "'", '"', "[", "]", "1", "-2", "0.5", "1e3", "nan", "True", "False", "None", "_",
           "4b", "\n", "x y"]


@settings(max_examples=200, **_FAST)
@given(st.lists(st.sampled_from(_TOKENS), max_size=14).map("".join))
def test_grammar_token_soup_parses_or_raises_quantizer_string_error(text):
    _parses_or_fails_cleanly(text)


# Argument-shaped pieces reach the value rules far more often than free text does.
_pieces = st.lists(st.text(alphabet="x1.=[]' ", max_size=5), max_size=4).map(",".join)
_endings = st.sampled_from([")", ") ", "", "))", ") x", ")(", "(", ","])


@settings(max_examples=250, **_FAST)
@given(st.tuples(_pieces, _endings).map(lambda p: "f(" + p[0] + p[1]))
def test_call_shaped_text_parses_or_raises_quantizer_string_error(text):
    _parses_or_fails_cleanly(text)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_identifiers = st.builds(str.__add__, st.sampled_from(_LETTERS),
                         st.text(_LETTERS + "0123456789", max_size=12))
_ints = st.integers(min_value=-10**25, max_value=10**25)
_floats = st.floats(allow_nan=True, allow_infinity=True)
_string_body = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="(),="),
                       max_size=8)


def _quoted(body_and_quote):
    body, quote = body_and_quote
    return (body, quote + body + quote)


def _number_list(items_and_sep):
    items, sep = items_and_sep
    return (items, "[" + sep.join(repr(i) if isinstance(i, float) else str(i) for i in items) + "]")


def _values(positional):
    """Values paired with the text that spells them; positional ones contain no whitespace."""
    body = _string_body.filter(lambda b: not any(ch.isspace() for ch in b)) if positional \
        else _string_body
    return st.one_of(
        _ints.map(lambda i: (i, str(i))),
        _floats.map(lambda f: (f, repr(f))),
        st.booleans().map(lambda b: (b, str(b))),
        st.none().map(lambda n: (None, "None")),
        st.tuples(body, st.sampled_from(["'", '"'])).map(_quoted),
        st.tuples(st.lists(st.one_of(_ints, st.floats(allow_nan=False)),
                           max_size=1 if positional else 4),
                  st.sampled_from([" ", "  ", "\t"])).map(_number_list),
    )


_POSITIONAL_VALUES = _values(positional=True)
_KEYWORD_VALUES = _values(positional=False)
_spaces = st.sampled_from(["", " ", "  ", "\t", "\n"])


@st.composite
def _calls(draw):
    name = draw(_identifiers)
    args = draw(st.lists(_POSITIONAL_VALUES, max_size=4))
    keys = draw(st.lists(_identifiers, max_size=4, unique=True))
    kwargs = [(key, draw(_KEYWORD_VALUES)) for key in keys]
    parts = [draw(_spaces) + spelled + draw(_spaces) for _, spelled in args]
    parts += [draw(_spaces) + key + draw(_spaces) + "=" + draw(_spaces) + spelled + draw(_spaces)
              for key, (_, spelled) in kwargs]
    text = name + "(" + ",".join(parts) + ")" + draw(_spaces)
    expected = call(name, [value for value, _ in args], {key: value for key, (value, _) in kwargs})
    return text, expected


@settings(max_examples=150, **_FAST)
@given(_calls())
def test_formatted_calls_round_trip(text_and_expected):
    text, expected = text_and_expected
    assert same(parse(text), expected)
