"""CONTENT_LENGTH parsing: plain ASCII digits or nothing; anything else is a 400."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsgiwire._errors import BadRequest, ResponseHeaderError
from wsgiwire._params import length_value, parse_content_length
from wsgiwire.core._response import validate_headers

MALFORMED = [
    "+1_0",
    "1_0",
    "+5",
    " 5",
    "5 ",
    "5\t",
    "-1",
    "-0",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: int() says 3
    "\uff15",  # FULLWIDTH DIGIT FIVE: int() says 5
    "0x10",
    "1e3",
    "5.0",
    "1" * 20,
    "9" * 20,
    "12a",
    "\udcd9",  # a surrogate escape, as os.environ text may carry
]


@pytest.mark.parametrize("raw", MALFORMED, ids=[repr(m) for m in MALFORMED])
def test_malformed_str_is_bad_request(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_content_length(raw)
    assert caught.value.status_hint == 400


@pytest.mark.parametrize(
    "raw",
    [m.encode("utf-8", "surrogateescape") for m in MALFORMED],
    ids=[repr(m) for m in MALFORMED],
)
def test_malformed_bytes_is_bad_request(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_content_length(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("", None),
        (b"", None),
        ("0", 0),
        (b"0", 0),
        ("5", 5),
        ("007", 7),
        (b"1048576", 1048576),
        ("9" * 19, int("9" * 19)),  # 19 digits: parsed; the body limit refuses it later
    ],
)
def test_valid(raw: str | bytes | None, expected: int | None) -> None:
    assert parse_content_length(raw) == expected


@given(st.integers(min_value=0, max_value=10**19 - 1))
def test_round_trip(n: int) -> None:
    assert parse_content_length(str(n)) == n
    assert parse_content_length(str(n).encode("ascii")) == n


@given(st.text(min_size=1, max_size=25))
def test_any_text_is_a_number_or_bad_request(raw: str) -> None:
    """Never another exception (UnicodeEncodeError, ValueError): int or BadRequest."""
    plain = raw.isascii() and raw.isdigit() and len(raw) <= 19
    try:
        value = parse_content_length(raw)
    except BadRequest:
        assert not plain
    else:
        assert plain and value == int(raw)


@given(st.one_of(st.text(alphabet="0123456789 +-_x\u0663", max_size=22), st.text(max_size=22)))
def test_one_digit_rule_for_every_length(raw: str) -> None:
    """What a length looks like is stated once (``length_value``): a request's
    CONTENT_LENGTH and a response's Content-Length header accept the same texts."""
    value = length_value(raw)
    if value is not None:
        assert parse_content_length(raw) == value == int(raw)
        assert validate_headers([("Content-Length", raw)]) == [("Content-Length", raw)]
    else:
        if raw:
            with pytest.raises(BadRequest):
                parse_content_length(raw)
        with pytest.raises(ResponseHeaderError):
            validate_headers([("Content-Length", raw)])
