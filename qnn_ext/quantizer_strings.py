"""Parser for quantizer strings such as ``"quantized_bits(4,0,1,alpha='auto_po2')"``.

This reproduces the small call grammar of QKeras's ``safe_eval`` (quantizers.md §1.1) without
evaluating any code: no ``eval``/``exec``/``compile``/``ast.literal_eval`` is used, and the only
conversions applied to user text are ``int()`` and ``float()``.

Grammar
-------
``NAME`` or ``NAME(ARG, ARG, ..., KEY=VALUE, ...)``

* The string is split at ``"("``; the part before it is the name and must be a Python identifier
  (QKeras looks it up unchanged, so ``" binary"`` or ``"binary (1)"`` is an error, not a lookup of
  ``binary``).
* Arguments are separated by ``","``; each one is stripped of surrounding whitespace. An argument
  containing ``"="`` is a keyword argument (split at the first ``"="``); positional arguments must
  come before keyword arguments and cannot contain whitespace (so ``'a b'`` and ``[1 2]`` can only
  be keyword values), as in QKeras.
* A value is tried, in this order, as: ``True``/``False`` -> bool; ``int``; ``float``; ``None``;
  a bracketed, whitespace-separated list of numbers such as ``[1 2]`` or ``[0.5 1.0]`` -> list;
  otherwise a string whose first and last characters are removed (they are expected to be quotes).
* There is no quoting inside the grammar: a string value cannot contain ``","``, ``"("`` or ``")"``.

Examples::

    "quantized_relu(3)"                  -> quantized_relu, args (3,)
    "quantized_bits(4,0,1,alpha='auto_po2')"
                                         -> args (4, 0, 1), kwargs {"alpha": "auto_po2"}
    "quantized_relu(6,2,1)"              -> args (6, 2, 1)   (the third positional is use_sigmoid)
    "quantized_po2(4,1)"                 -> args (4, 1)
    "binary"                             -> binary, no call (has_call False)
    "ternary(alpha=1.0, threshold=0.33)" -> kwargs {"alpha": 1.0, "threshold": 0.33}
    "quantized_relu_po2(6, quadratic_approximation=True)"
                                         -> args (6,), kwargs {"quadratic_approximation": True}

QKeras quirks kept on purpose, because saved configurations may depend on them:

* Unquoted strings lose their first and last characters: ``alpha=auto_po2`` gives ``"uto_po"``,
  ``alpha=x`` gives ``""`` and an empty value ``alpha=`` gives ``""``.
* A string with more than one ``"("`` (a nested call such as ``"quantized_bits(4,alpha=f(1))"``)
  silently drops all of its arguments; QKeras then treats it exactly like the bare name, so such a
  string parses with ``has_call=False`` (a class is instantiated with defaults, a function is
  returned uncalled). Nothing after the name is checked in that case.
* Numbers are whatever Python's ``int()``/``float()`` accept, e.g. ``1_000``, ``+3``, ``nan``,
  ``-inf`` (see ``_to_number``).

Deliberate differences from QKeras (it either crashed later or silently misread the string):

* Trailing whitespace of a keyword value is stripped (QKeras kept it, so ``flag=True )`` became
  the string ``"rue"``).
* Malformed strings raise :class:`QuantizerStringError` naming the 0-based position: unbalanced
  parentheses, non-whitespace text after the closing ``")"`` (QKeras ignored it), an empty name or
  argument, a name or keyword that is not an identifier, ``=`` without a keyword, a duplicate
  keyword (QKeras kept the last one), whitespace inside a positional argument and a positional
  argument after a keyword argument (QKeras raised SyntaxError or a pyparsing error for those).
"""

import dataclasses
import difflib

__all__ = ["ParsedCall", "QuantizerStringError", "parse_quantizer_string", "close_names"]


# Both bases: QKeras raised SyntaxError for a positional argument after a keyword one, while a bad
# value is naturally a ValueError. Their instance layouts are compatible on CPython (ValueError adds
# no fields to BaseException), so the combination is allowed (checked on 3.11).
class QuantizerStringError(ValueError, SyntaxError):
    """A malformed quantizer string.

    ``position`` is the 0-based character index of the problem and ``text`` the whole string.
    """

    def __init__(self, message, text=None, position=None):
        super().__init__(message)
        # SyntaxError.__str__ prints ``msg``, which BaseException.__init__ (reached first through
        # ValueError in the MRO) leaves as None; without this str(error) would be "None".
        self.msg = message
        self.text = text
        self.position = position
        # SyntaxError's 1-based column lets traceback draw a caret under the bad character.
        self.offset = None if position is None else position + 1


@dataclasses.dataclass(frozen=True)
class ParsedCall:
    """Result of :func:`parse_quantizer_string`.

    ``has_call`` is True when the arguments in parentheses are to be applied (``"f()"``), False for
    a bare name (``"f"``) and for nested calls, which QKeras treats as a bare name.
    """

    name: str
    args: tuple
    kwargs: dict
    has_call: bool


_NOT_A_NUMBER = object()


def _to_number(token):
    # QKeras tries int() then float() on the raw token, so a value is a number exactly when Python's
    # int()/float() accept it: that includes "1_000", "+3", "1e-3", "nan", "inf", "-Infinity" and
    # non-ASCII decimal digits ("٣" -> 3). Accepting the same set is what keeps saved strings
    # meaning the same thing. These calls only convert text; they evaluate nothing.
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        return _NOT_A_NUMBER


def _parse_value(token):
    if token == "True" or token == "False":
        return token == "True"
    number = _to_number(token)
    if number is not _NOT_A_NUMBER:
        return number
    if token == "None":
        return None
    if len(token) >= 2 and token[0] == "[" and token[-1] == "]":
        items = [_to_number(item) for item in token[1:-1].split()]
        if all(item is not _NOT_A_NUMBER for item in items):
            return items
    # The string fallback: QKeras assumes quotes and cuts one character off each end.
    return token[1:-1]


def _error(text, what, position):
    return QuantizerStringError(
        f"quantizer string {text!r}: {what} at position {position}", text, position)


def _skip_space(text, start, stop):
    while start < stop and text[start].isspace():
        start += 1
    return start


def _check_name(text, name):
    if not name:
        raise _error(text, "empty name", 0)
    if ")" in name:
        raise _error(text, "unbalanced parentheses: ')' without '('", name.index(")"))
    if not name.isidentifier():
        # Checking character by character keeps this linear; it matches str.isidentifier(),
        # which tests the first character as a start and the others as continuations.
        bad = 0 if not name[0].isidentifier() else next(
            i for i in range(1, len(name)) if not ("_" + name[i]).isidentifier())
        raise _error(text, f"name {name!r} is not an identifier", bad)


def parse_quantizer_string(text):
    """Parse a QKeras quantizer string into a :class:`ParsedCall` (grammar: module docstring).

    >>> parse_quantizer_string("quantized_bits(4,0,1,alpha='auto_po2')")
    ParsedCall(name='quantized_bits', args=(4, 0, 1), kwargs={'alpha': 'auto_po2'}, has_call=True)

    Raises TypeError for a non-str argument and QuantizerStringError for a malformed string.
    """
    if not isinstance(text, str):
        raise TypeError(f"quantizer string must be str, not {type(text).__name__}")

    open_at = text.find("(")
    name = text if open_at < 0 else text[:open_at]
    _check_name(text, name)
    if open_at < 0:
        return ParsedCall(name, (), {}, False)
    if text.count("(") > 1:
        return ParsedCall(name, (), {}, False)

    close_at = text.find(")", open_at)
    if close_at < 0:
        raise _error(text, "unbalanced parentheses: missing ')'", len(text))

    args, kwargs = [], {}
    if text[open_at + 1:close_at].strip():
        start = open_at + 1
        while start <= close_at:
            end = text.find(",", start, close_at)
            if end < 0:
                end = close_at
            first = _skip_space(text, start, end)
            if first == end:
                raise _error(text, "empty argument", end)
            piece = text[first:end]
            if "=" in piece:
                equals_at = first + piece.index("=")
                key = text[first:equals_at].strip()
                if not key:
                    raise _error(text, "'=' without a keyword", equals_at)
                if not key.isidentifier():
                    raise _error(text, f"keyword {key!r} is not an identifier", first)
                if key in kwargs:
                    raise _error(text, f"duplicate keyword argument {key!r}", first)
                kwargs[key] = _parse_value(text[equals_at + 1:end].strip())
            else:
                if kwargs:
                    raise _error(text, "positional argument follows keyword argument", first)
                # QKeras's positional token excludes whitespace, so "quantized_bits(4 0)" is a typo
                # to report, not the string " ".
                last = len(piece.rstrip())
                inner = next((i for i in range(last) if piece[i].isspace()), None)
                if inner is not None:
                    raise _error(text, "whitespace inside positional argument", first + inner)
                args.append(_parse_value(piece.strip()))
            start = end + 1

    trailing = _skip_space(text, close_at + 1, len(text))
    if trailing < len(text):
        if text[trailing] == ")":
            raise _error(text, "unbalanced parentheses: ')' without '('", trailing)
        raise _error(text, "unexpected text after ')'", trailing)
    return ParsedCall(name, tuple(args), kwargs, True)


def close_names(name, candidates, n=3):
    """Return up to ``n`` of ``candidates`` that resemble ``name``, best first (for error hints)."""
    return difflib.get_close_matches(name, list(candidates), n=n)
