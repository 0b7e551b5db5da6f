"""The hostile-input catalogue: one named, table-driven entry per case.

Each :class:`Case` gives the protocol, a class (see ``CLASSES``), the exact
bytes to send (or a sequence of sends, pauses, half-closes and resets), the app
it runs (named in the bytes by the ``X-Hostile-App`` header; ``echo`` when
absent), and the expected outcome (:class:`~tests.hostile.harness.Expect`).
:func:`tests.hostile.harness.run_case` runs one and checks the post-conditions
every case shares.

The bytes are built with the independent spec encoders in ``tests/support``
(never with wsgiwire's own), or written out by hand where a case breaks the
format.

A case that shows a bug in wsgiwire carries ``xfail``: the reason names the
file and what is wrong; the case keeps failing until the bug is fixed (strict).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from tests.support import fcgi_spec as spec

from .apps import APPS
from .harness import (
    Expect,
    HalfClose,
    Pause,
    ReadThenReset,
    Reset,
    Step,
    Trickle,
    base_params,
    good_request,
)

__all__ = ["CASES", "CLASSES", "Case", "by_name"]

CLASSES = (
    "framing",
    "limits",
    "params",
    "body",
    "smuggling",
    "response",
    "app",
    "disconnect",
    "slow",
    "security",
)

Pairs = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Case:
    name: str
    protocol: str  # "fastcgi", "scgi", "uwsgi"
    cls: str  # one of CLASSES
    steps: tuple[Step, ...]
    expect: Expect
    app: str = "echo"
    profile: str = "default"  # limits profile (harness.PROFILES)
    followup_id: int = 1  # FastCGI request id of the same-connection good request
    bytewise: bool = True  # also run one byte per send (slow cases trickle already)
    xfail: str | None = None  # a bug in wsgiwire this case shows (file: what)
    note: str = ""

    @property
    def data(self) -> bytes:
        """Every byte the case sends, in order (for documentation and the shape test)."""
        out = b""
        for step in self.steps:
            if isinstance(step, bytes):
                out += step
            elif isinstance(step, Trickle):
                out += step.data
        return out


# --- Expected outcomes ---------------------------------------------------------

SERVED = Expect()
SERVED_KEPT = Expect(closed=False)


def refused(status: int, *, fastcgi_kept: bool = False, **kw: object) -> Expect:
    """A malformed request: an error reply, the connection closed, one warning."""
    base = Expect(status=status, app_status=1, closed=not fastcgi_kept, warnings=1)
    return replace(base, **kw)  # type: ignore[arg-type]


# No reply at all, the connection closed, one warning (FastCGI framing errors
# that belong to no request the server could answer).
DROPPED = Expect(status=None, warnings=1)
# The peer closed cleanly before sending anything.
QUIET = Expect(status=None, warnings=0)


# --- FastCGI building blocks (tests/support/fcgi_spec: the independent encoder) -

KEEP = spec.KEEP_CONN


def fparams(app: str = "echo", *, body: bytes = b"", extra: Sequence[tuple[bytes, bytes]] = (),
            content_length: bytes | None = None, **kw: bytes) -> Pairs:
    cl = str(len(body)).encode() if content_length is None else content_length
    return base_params(app, content_length=cl, **kw) + list(extra)  # type: ignore[arg-type]


def freq(
    rid: int = 1,
    app: str = "echo",
    *,
    body: bytes = b"",
    keep: bool = True,
    pairs: Pairs | None = None,
    extra: Sequence[tuple[bytes, bytes]] = (),
    content_length: bytes | None = None,
) -> bytes:
    """A whole FastCGI request (BEGIN, PARAMS stream, STDIN stream)."""
    items = pairs if pairs is not None else fparams(
        app, body=body, extra=extra, content_length=content_length
    )
    return spec.request(rid, items, body, flags=KEEP if keep else 0)


def fbegin(rid: int = 1, *, role: int = spec.RESPONDER, keep: bool = True) -> bytes:
    return spec.begin_request(rid, role, KEEP if keep else 0)


def fhead(rid: int = 1, app: str = "echo", **kw: object) -> bytes:
    """BEGIN and the whole PARAMS stream: the request has started, STDIN not sent."""
    return fbegin(rid) + spec.params(rid, fparams(app, **kw))  # type: ignore[arg-type]


def raw_record(rtype: int, rid: int, content: bytes = b"", *, version: int = 1,
               padding: int | None = None, reserved: int = 0,
               declared: int | None = None) -> bytes:
    """A record written out by hand; ``declared`` overrides contentLength."""
    if padding is None:
        padding = -len(content) % 8
    size = len(content) if declared is None else declared
    header = bytes([version, rtype, rid >> 8, rid & 0xFF, size >> 8, size & 0xFF,
                    padding, reserved])
    return header + content + b"\0" * padding


def padded_request(padding: int, reserved: int = 0) -> bytes:
    """A valid keep-alive request whose every record carries ``padding`` bytes."""
    begin = b"\0\x01" + bytes([KEEP]) + bytes(5)
    return b"".join((
        raw_record(spec.BEGIN_REQUEST, 1, begin, padding=padding, reserved=reserved),
        raw_record(spec.PARAMS, 1, spec.pairs(fparams()), padding=padding, reserved=reserved),
        raw_record(spec.PARAMS, 1, padding=padding, reserved=reserved),
        raw_record(spec.STDIN, 1, padding=padding, reserved=reserved),
    ))


def huge_length_pair(*, name: bool) -> bytes:
    """A pair whose name (or value) length claims 2^31 - 1 bytes (high bit set)."""
    claim = b"\xff\xff\xff\xff"
    return claim + b"\x01" + b"X" if name else b"\x01" + claim + b"X"


# --- SCGI building blocks (hand-written netstrings) ---------------------------


def sblock(pairs: Pairs) -> bytes:
    return b"".join(n + b"\0" + v + b"\0" for n, v in pairs)


def snet(block: bytes) -> bytes:
    return str(len(block)).encode() + b":" + block + b","


def sreq(app: str = "echo", *, body: bytes = b"", extra: Sequence[tuple[bytes, bytes]] = (),
         content_length: bytes | None = None, head: Pairs | None = None) -> bytes:
    """An SCGI request: CONTENT_LENGTH first, SCGI=1, the usual params, then the body."""
    cl = str(len(body)).encode() if content_length is None else content_length
    first = [(b"CONTENT_LENGTH", cl), (b"SCGI", b"1")] if head is None else head
    return snet(sblock(first + base_params(app, content_length=None) + list(extra))) + body


# --- uwsgi building blocks --------------------------------------------------------


def u16(n: int) -> bytes:
    return bytes([n & 0xFF, n >> 8])


def ublock(pairs: Pairs) -> bytes:
    return b"".join(u16(len(n)) + n + u16(len(v)) + v for n, v in pairs)


def upacket(block: bytes, modifier1: int = 0, modifier2: int = 0,
            datasize: int | None = None) -> bytes:
    size = len(block) if datasize is None else datasize
    return bytes([modifier1]) + u16(size) + bytes([modifier2]) + block


def ureq(app: str = "echo", *, body: bytes = b"", extra: Sequence[tuple[bytes, bytes]] = (),
         content_length: bytes | None = None, modifier1: int = 0,
         pairs: Pairs | None = None) -> bytes:
    cl = str(len(body)).encode() if content_length is None else content_length
    items = pairs if pairs is not None else base_params(app, content_length=cl) + list(extra)
    return upacket(ublock(items), modifier1) + body


def req(protocol: str, app: str = "echo", **kw: object) -> bytes:
    """A request for ``app`` in ``protocol`` (FastCGI: kept alive)."""
    if protocol == "fastcgi":
        return freq(app=app, **kw)  # type: ignore[arg-type]
    if protocol == "scgi":
        return sreq(app, **kw)  # type: ignore[arg-type]
    return ureq(app, **kw)  # type: ignore[arg-type]


# --- Shared inputs ------------------------------------------------------------------

# Non-latin-1 text as UTF-8, invalid UTF-8, and every high byte: all reach the
# app as latin-1 native strings (PEP 3333), byte for byte.
UTF8 = "\u00e9\u2603".encode()
INVALID_UTF8 = b"\xff\xfe\x80\xc3"
HIGH_BYTES = bytes(range(0x80, 0x100))
UNICODE_DIGITS = "\u0661\u0662".encode()  # ARABIC-INDIC DIGIT ONE, TWO ("12" to int())

BAD_CONTENT_LENGTHS = {
    "plus-underscore": b"+1_0",
    "negative": b"-1",
    "non-ascii-digits": UNICODE_DIGITS,
    "space": b" 5",
    "hex": b"0x10",
    "twenty-digits": b"9" * 20,
}

FORWARDED_HEADERS: Pairs = [
    (b"HTTP_X_FORWARDED_PROTO", b"https"),
    (b"HTTP_X_FORWARDED_FOR", b"6.6.6.6"),
    (b"HTTP_X_FORWARDED_HOST", b"evil.example"),
    (b"HTTP_HTTPS", b"on"),
    (b"HTTP_REQUEST_SCHEME", b"https"),
    (b"HTTP_REMOTE_ADDR", b"6.6.6.6"),
]
FORWARDED_EXPECT = Expect(echo=(
    ("wsgi.url_scheme", "http"),
    ("REMOTE_ADDR", "127.0.0.1"),
    ("SERVER_NAME", "localhost"),
    ("HTTPS", None),
    ("REQUEST_SCHEME", None),
    ("HTTP_X_FORWARDED_PROTO", "https"),  # passed on as a header, never acted on
))

WSGI_KEYS_AS_PARAMS: Pairs = [
    (b"wsgi.url_scheme", b"https"),
    (b"wsgi.input", b"injected"),
    (b"wsgi.errors", b"injected"),
    (b"wsgi.version", b"injected"),
    (b"wsgi.file_wrapper", b"injected"),
]
WSGI_KEYS_EXPECT = Expect(echo=(
    ("wsgi.url_scheme", "http"),
    ("wsgi.input", "BytesIO"),
    ("wsgi.errors", "ErrorStream"),
    ("wsgi.version", "tuple"),
    ("wsgi.file_wrapper", "type"),
))

HTTPOXY: Pairs = [(b"HTTP_PROXY", b"http://evil.example:8080")]
HTTPOXY_EXPECT = Expect(echo=(("HTTP_PROXY", None),), absent=(b"evil.example",))

# PHP-FPM CVE-2019-11043 shapes: nginx's fastcgi_split_path_info fails on a
# newline (%0a), leaving PATH_INFO empty while SCRIPT_NAME and REQUEST_URI
# disagree; the FPM then underflowed a buffer computing paths. Every shape
# must be served (by the echo app) without a crash.
CVE_PATHS: dict[str, Pairs] = {
    "newline-escaped-empty-path-info": [
        (b"SCRIPT_NAME", b"/index.php"), (b"PATH_INFO", b""),
        (b"REQUEST_URI", b"/index.php/PHP%0Ais_the_shittiest_lang.php?a=" + b"Q" * 1500),
    ],
    "raw-newline-in-path-info": [
        (b"SCRIPT_NAME", b"/index.php"), (b"PATH_INFO", b"/x\ny\r\n"),
        (b"REQUEST_URI", b"/index.php/x%0Ay%0D%0A"),
    ],
    "script-name-longer-than-uri": [
        (b"SCRIPT_NAME", b"/a/very/long/script/name/that/is/not/in/the/uri.php"),
        (b"REQUEST_URI", b"/a"), (b"PATH_INFO", b""),
    ],
    "no-path-info-uri-shorter": [
        (b"SCRIPT_NAME", b"/app/"), (b"REQUEST_URI", b"/"),
    ],
    "very-long-path-info": [
        (b"PATH_INFO", b"/" + b"A" * 30000), (b"REQUEST_URI", b"/" + b"A" * 30000),
    ],
    "bad-percent-escapes": [
        (b"SCRIPT_NAME", b"/app"), (b"REQUEST_URI", b"/app/%zz%%2%"),
    ],
    "absolute-form-uri": [
        (b"SCRIPT_NAME", b""), (b"REQUEST_URI", b"http://evil.example"),
    ],
}


def _drop_names(pairs: Pairs, names: set[bytes]) -> Pairs:
    return [(n, v) for n, v in pairs if n not in names]


def with_path(params: Pairs, override: Pairs) -> Pairs:
    """``params`` with SCRIPT_NAME/PATH_INFO/REQUEST_URI replaced by ``override``."""
    names = {b"SCRIPT_NAME", b"PATH_INFO", b"REQUEST_URI"}
    return _drop_names(params, names) + override


def with_protocol(protocol: bytes) -> Pairs:
    """uwsgi params (CONTENT_LENGTH 0) whose SERVER_PROTOCOL is ``protocol``."""
    return [*_drop_names(base_params(content_length=b"0"), {b"SERVER_PROTOCOL"}),
            (b"SERVER_PROTOCOL", protocol)]


# --- The catalogue ------------------------------------------------------------------

CASES_LIST: list[Case] = []


def case(name: str, protocol: str, cls: str, steps: Sequence[Step] | bytes, expect: Expect,
         **kw: object) -> None:
    if isinstance(steps, bytes):
        steps = (steps,)
    CASES_LIST.append(Case(name, protocol, cls, tuple(steps), expect, **kw))  # type: ignore[arg-type]


F, S, U = "fastcgi", "scgi", "uwsgi"

BUG_FCGI_REQUEST_ID_LOST = (
    "wsgiwire/adapters/_connection.py Connection.dispatch/start: a BadRequest or LimitExceeded "
    "raised by EnvironBuilder.build() (malformed CONTENT_LENGTH) or BodyBuffer.feed() (STDIN "
    "longer than CONTENT_LENGTH) carries no request_id, so protocol_error() sends no reply and "
    "just closes: the web server sees no FCGI_END_REQUEST (nginx: 502) where SCGI and uwsgi "
    "answer 400. Fix: in pump(), set exc.request_id from the event when it is None."
)

BUG_SERVES_AFTER_SHOULD_CLOSE = (
    "wsgiwire/adapters/_connection.py Connection.pump: the loop keeps taking events after "
    "the codec's should_close turned true (END_REQUEST sent for a request begun without "
    "FCGI_KEEP_CONN), so a second request pipelined behind it on the same connection is run "
    "and answered; the spec says the application closes after that response. Fix: after "
    "each dispatch, stop (and close) once codec.should_close and no request is pending."
)
BUG_HEAD_TIMER_BETWEEN_REQUESTS = (
    "wsgiwire/adapters/_connection.py Connection.on_readable sets head_since for ANY bytes "
    "arriving while no request is started, and only start() clears it: bytes that begin no "
    "request (an FCGI_ABORT_REQUEST or STDIN for an ended id, FCGI_GET_VALUES) leave the "
    "header timer running on an idle kept-alive connection, which Worker._sweep then cuts "
    "after header_timeout with a bogus 'took over N s to send a request head' warning (and "
    "_close_idle skips it on graceful stop). Fix: clear head_since in pump() whenever the "
    "codec holds no partial request (e.g. no active request and an empty receive buffer)."
)
BUG_SLOW_READER_BLOCKS_WORKER = (
    "wsgiwire/adapters/_connection.py Connection.write: when the socket is full it polls "
    "for writability for up to write_timeout inside the worker's only thread (the app runs "
    "inline), so one client that stops reading stalls every other connection of the worker "
    "for up to write_timeout (60 s by default; here 1 s). Fix: queue what does not fit and "
    "return to the loop (EVENT_WRITE), resuming the app's iterable when writable, or run apps "
    "off the loop thread."
)

# ---- FastCGI: framing ------------------------------------------------------------

for version in (0, 2, 255):
    case(f"fcgi-version-{version}", F, "framing",
         raw_record(spec.BEGIN_REQUEST, 1, b"\0\x01\x01" + bytes(5), version=version), DROPPED)

for rtype in (0, 12, 255):
    case(f"fcgi-unknown-type-{rtype}-null-id", F, "framing",
         raw_record(rtype, 0, b"junk"),
         Expect(status=None, unknown_types=(rtype,), closed=False),
         note="answered with FCGI_UNKNOWN_TYPE; the connection stays usable")

case("fcgi-unknown-type-12-mid-request", F, "framing",
     fbegin() + raw_record(12, 1, b"junk") + spec.params(1, fparams()) + spec.stdin(1),
     Expect(unknown_types=(12,), closed=False))

for rtype, label in ((spec.END_REQUEST, "end-request"), (spec.STDOUT, "stdout"),
                     (spec.STDERR, "stderr"), (spec.GET_VALUES_RESULT, "get-values-result"),
                     (spec.UNKNOWN_TYPE, "unknown-type")):
    case(f"fcgi-server-only-type-{label}", F, "framing",
         raw_record(rtype, 1, bytes(8)), DROPPED,
         note="a record type only applications send")

for rtype, label in ((spec.BEGIN_REQUEST, "begin"), (spec.ABORT_REQUEST, "abort"),
                     (spec.PARAMS, "params"), (spec.STDIN, "stdin")):
    content = b"\0\x01\x01" + bytes(5) if rtype == spec.BEGIN_REQUEST else b""
    case(f"fcgi-null-request-id-{label}", F, "framing",
         fbegin(1) + raw_record(rtype, 0, content) if rtype != spec.BEGIN_REQUEST
         else raw_record(rtype, 0, content), DROPPED,
         note="request id 0 is for management records only")

for size in (0, 7, 9):
    case(f"fcgi-begin-body-{size}-bytes", F, "framing",
         raw_record(spec.BEGIN_REQUEST, 1, (b"\0\x01\x01" + bytes(6))[:size]), DROPPED)

case("fcgi-padding-255", F, "framing", padded_request(255), SERVED_KEPT)
case("fcgi-padding-unaligned-3", F, "framing", padded_request(3), SERVED_KEPT)
case("fcgi-reserved-byte-set", F, "framing", padded_request(0, reserved=0xFF), SERVED_KEPT)

case("fcgi-truncated-header-at-eof", F, "framing",
     (fbegin() + raw_record(spec.PARAMS, 1, b"\x01\x01ab")[:3], HalfClose()),
     DROPPED,
     note="EOF inside a record: no request can be answered; closed")
case("fcgi-truncated-content-at-eof", F, "framing",
     (fbegin() + raw_record(spec.PARAMS, 1, b"\x01\x01ab", declared=100)[:20], HalfClose()),
     DROPPED)
case("fcgi-truncated-padding-at-eof", F, "framing",
     (fbegin() + raw_record(spec.PARAMS, 1, b"\x01\x01ab", padding=200)[:40], HalfClose()),
     DROPPED)
case("fcgi-truncated-header-no-request", F, "framing",
     (b"\x01\x01\x00", HalfClose()), DROPPED)
case("fcgi-eof-mid-params", F, "framing",
     (fbegin() + spec.stream(spec.PARAMS, 1, spec.pairs(fparams()), end=False), HalfClose()),
     Expect(status=400, app_status=1, warnings=1))
case("fcgi-content-length-65535", F, "framing",
     freq(body=b"b" * 65535),
     Expect(closed=False, echo=(("CONTENT_LENGTH", "65535"),)))
case("fcgi-header-length-65535-declared-short", F, "framing",
     (fbegin() + raw_record(spec.PARAMS, 1, b"\x01\x01ab", declared=65535, padding=0),
      HalfClose()),
     DROPPED,
     note="contentLength 65535 with 4 bytes sent: waits, then EOF mid-record")

case("fcgi-request-id-65535", F, "framing", freq(65535), SERVED_KEPT)
case("fcgi-begin-flags-all-bits", F, "framing",
     raw_record(spec.BEGIN_REQUEST, 1, b"\0\x01\xff" + bytes(5))
     + spec.params(1, fparams()) + spec.stdin(1),
     SERVED_KEPT, note="unknown flag bits are ignored; FCGI_KEEP_CONN (bit 0) is set")
case("fcgi-stdin-before-params-end", F, "framing",
     fbegin() + spec.stream(spec.PARAMS, 1, spec.pairs(fparams()), end=False)
     + spec.stdin(1, b"x"), refused(400))
case("fcgi-data-stream-for-responder", F, "framing",
     fhead(content_length=b"0") + spec.stdin(1) + spec.data_stream(1, b"x"),
     SERVED_KEPT,
     note="STDIN's end already ran the request; FCGI_DATA for the ended id is ignored")
case("fcgi-data-before-stdin-end", F, "framing",
     fhead(content_length=b"5") + spec.record(spec.DATA, 1, b"x") + spec.stdin(1, b"hello"),
     refused(400))

# ---- FastCGI: limits -------------------------------------------------------------

case("fcgi-name-length-2-31", F, "limits",
     fbegin() + spec.record(spec.PARAMS, 1, huge_length_pair(name=True)),
     refused(431, within=1.0), note="the 4-byte length is refused before any byte of it")
case("fcgi-value-length-2-31", F, "limits",
     fbegin() + spec.record(spec.PARAMS, 1, b"\x01" + b"\xff\xff\xff\xff" + b"X"),
     refused(431, within=1.0))
case("fcgi-name-length-2-31-split-across-records", F, "limits",
     fbegin() + spec.record(spec.PARAMS, 1, b"\xff\xff")
     + spec.record(spec.PARAMS, 1, b"\xff\xff\x01X"),
     refused(431, within=1.0))
case("fcgi-100k-params", F, "limits",
     fbegin() + spec.params(1, [(b"A", b"")] * 100_000),
     refused(431, within=2.0), note="max_param_count: refused at the 513th pair")
case("fcgi-params-bytes-over-limit", F, "limits",
     fbegin() + spec.params(1, [(b"HTTP_X_%d" % i, b"v" * 30000) for i in range(3)]),
     refused(431))
case("fcgi-name-over-limit", F, "limits",
     fbegin() + spec.params(1, [(b"N" * 2000, b"v")]), refused(431))
case("fcgi-value-over-limit", F, "limits",
     fbegin() + spec.params(1, [(b"HTTP_X", b"v" * 40000)]), refused(431))
case("fcgi-stdin-over-max-body", F, "limits",
     fhead(content_length=b"") + spec.stdin(1, b"x" * 5000),
     refused(413), profile="tight", note="no CONTENT_LENGTH: the STDIN stream itself is bounded")
case("fcgi-declared-body-over-max", F, "limits",
     fhead(content_length=b"5000") + spec.stdin(1, b"x" * 5000),
     refused(413), profile="tight")
case("fcgi-overloaded-17th-request", F, "limits",
     b"".join(fbegin(rid) for rid in range(1, 18))
     + b"".join(spec.abort_request(rid) for rid in range(1, 17)),
     Expect(status=None, ends=((0, spec.OVERLOADED),) + ((0, 0),) * 16, closed=False),
     followup_id=17,
     note="16 requests active at once (max_requests_per_connection); the 17th is refused")
case("fcgi-unknown-role", F, "limits",
     fbegin(role=9) + spec.params(1, fparams()) + spec.stdin(1),
     Expect(status=None, ends=((0, spec.UNKNOWN_ROLE),), closed=False),
     note="its PARAMS and STDIN, already in flight, are ignored")
case("fcgi-authorizer-role-not-served", F, "limits",
     fbegin(role=spec.AUTHORIZER) + spec.params(1, fparams()),
     Expect(status=None, ends=((0, spec.UNKNOWN_ROLE),), closed=False))
case("fcgi-unknown-role-no-keep-conn", F, "limits",
     fbegin(role=9, keep=False), Expect(status=None, ends=((0, spec.UNKNOWN_ROLE),)))
case("fcgi-get-values", F, "limits",
     spec.get_values([b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS", b"NO_SUCH"]),
     Expect(status=None, closed=False, values=(
         (b"FCGI_MAX_CONNS", b"1024"), (b"FCGI_MAX_REQS", b"1"), (b"FCGI_MPXS_CONNS", b"0"))))
case("fcgi-get-values-with-request-id", F, "limits",
     raw_record(spec.GET_VALUES, 1, spec.pairs([(b"FCGI_MAX_REQS", b"")])), DROPPED)
case("fcgi-get-values-name-2-31", F, "limits",
     raw_record(spec.GET_VALUES, 0, b"\xff\xff\xff\xff\x00X"), DROPPED)
case("fcgi-get-values-truncated-pair", F, "limits",
     raw_record(spec.GET_VALUES, 0, b"\x0d\x00FCGI_MAX"), DROPPED)

# ---- FastCGI: params -------------------------------------------------------------

LONG = b"L" * 300  # a 4-byte length
SPLIT_PARAMS = fparams(extra=[(b"HTTP_X_LONG", LONG), (b"HTTP_X_SHORT", b"short")])
SPLIT_STREAM = spec.pairs(SPLIT_PARAMS)
AT_LONG = SPLIT_STREAM.index(b"HTTP_X_LONG") - 5  # the first byte of its 4-byte value length
case("fcgi-pair-split-in-value", F, "params",
     fbegin() + spec.params(1, SPLIT_PARAMS, cuts=[AT_LONG + 5 + 11 + 150]) + spec.stdin(1),
     Expect(closed=False, echo=(("HTTP_X_LONG", LONG.decode()), ("HTTP_X_SHORT", "short"))))
case("fcgi-pair-split-in-4-byte-length", F, "params",
     fbegin() + spec.params(1, SPLIT_PARAMS, cuts=[AT_LONG + 1, AT_LONG + 2, AT_LONG + 3])
     + spec.stdin(1),
     Expect(closed=False, echo=(("HTTP_X_LONG", LONG.decode()), ("HTTP_X_SHORT", "short"))))
case("fcgi-params-one-byte-per-record", F, "params",
     fbegin() + spec.params(1, SPLIT_PARAMS, cuts=range(1, len(SPLIT_STREAM))) + spec.stdin(1),
     Expect(closed=False, echo=(("HTTP_X_LONG", LONG.decode()), ("HTTP_X_SHORT", "short"))))
case("fcgi-long-form-length-for-short-name", F, "params",
     fbegin() + spec.stream(
         spec.PARAMS, 1,
         spec.pairs(fparams()) + b"\x80\x00\x00\x06\x80\x00\x00\x02HTTP_Zok")
     + spec.stdin(1),
     Expect(closed=False, echo=(("HTTP_Z", "ok"),)),
     note="a 4-byte length may encode a small number")
case("fcgi-params-end-mid-pair", F, "params",
     fbegin() + spec.stream(spec.PARAMS, 1, spec.pairs(fparams()) + b"\x05\x05ab"),
     refused(400))
case("fcgi-nul-bytes-in-names-and-values", F, "params",
     freq(extra=[(b"HTTP_X\0NUL", b"a\0b"), (b"HTTP_X_ZERO", b"\0")]),
     Expect(closed=False, echo=(("HTTP_X\0NUL", "a\0b"), ("HTTP_X_ZERO", "\0"))))
case("fcgi-non-latin1-bytes", F, "params",
     freq(extra=[(b"HTTP_X_UTF8", UTF8), (b"HTTP_X_BAD", INVALID_UTF8),
                 (b"HTTP_\xff\xfe", HIGH_BYTES)]),
     Expect(closed=False, echo=(("HTTP_X_UTF8", UTF8.decode("latin-1")),
                                ("HTTP_X_BAD", INVALID_UTF8.decode("latin-1")),
                                ("HTTP_\xff\xfe", HIGH_BYTES.decode("latin-1")))))
case("fcgi-empty-name-and-value", F, "params",
     freq(extra=[(b"", b"x"), (b"HTTP_EMPTY", b"")]),
     Expect(closed=False, echo=(("HTTP_EMPTY", ""),)))
case("fcgi-duplicate-params", F, "params",
     freq(extra=[(b"SCRIPT_NAME", b"/second"), (b"HTTP_COOKIE", b"a=1"),
                 (b"HTTP_COOKIE", b"b=2")]),
     Expect(closed=False, echo=(("SCRIPT_NAME", "/second"), ("HTTP_COOKIE", "a=1; b=2"))))
case("fcgi-content-length-repeated-different", F, "params",
     fhead(extra=[(b"CONTENT_LENGTH", b"3")], content_length=b"5") + spec.stdin(1, b"hel"),
     Expect(closed=False, echo=(("CONTENT_LENGTH", "3"), ("wsgiwire.body", "hel"))),
     note="the last value wins, as for every CGI variable; FCGI_STDIN frames the body, "
     "so two lengths are not two framings here (uwsgi refuses them)")
for label, value in BAD_CONTENT_LENGTHS.items():
    if label != "negative":  # FastCGI: see fcgi-content-length-negative-* below
        case(f"fcgi-content-length-{label}", F, "params",
             freq(content_length=value), refused(400))
case("fcgi-content-length-negative-streams", F, "body",
     freq(content_length=b"-1", body=b"chunked body"),
     Expect(closed=False, echo=(("CONTENT_LENGTH", None), ("wsgi.input_terminated", "bool"),
                                ("wsgiwire.body", "chunked body"))),
     note="Caddy 2.6 sends -1 with a chunked body: FCGI_STDIN frames the body, so it is "
     "read to the empty STDIN record as 'no declared length' (SCGI and uwsgi: 400)")
case("fcgi-content-length-negative-empty", F, "body",
     freq(content_length=b"-1"),
     Expect(closed=False, echo=(("CONTENT_LENGTH", None), ("wsgiwire.body", ""))))
for label, override in CVE_PATHS.items():
    case(f"fcgi-cve-2019-11043-{label}", F, "security",
         freq(pairs=with_path(fparams(), override)), SERVED_KEPT)

# ---- FastCGI: security -----------------------------------------------------------

case("fcgi-httpoxy", F, "security", freq(extra=HTTPOXY), replace(HTTPOXY_EXPECT, closed=False))
case("fcgi-forwarded-headers-never-override", F, "security",
     freq(extra=FORWARDED_HEADERS), replace(FORWARDED_EXPECT, closed=False))
case("fcgi-wsgi-keys-as-params", F, "security",
     freq(extra=WSGI_KEYS_AS_PARAMS), replace(WSGI_KEYS_EXPECT, closed=False))
case("fcgi-http-content-length-dropped", F, "security",
     freq(body=b"hello", extra=[(b"HTTP_CONTENT_LENGTH", b"999")]),
     Expect(closed=False, echo=(("CONTENT_LENGTH", "5"), ("HTTP_CONTENT_LENGTH", None),
                                ("wsgiwire.body", "hello"))))

# ---- FastCGI: body and smuggling --------------------------------------------------

SMUGGLED = freq(2, extra=[(b"HTTP_X_SMUGGLED", b"yes")])
case("fcgi-body-shorter-than-declared-kept", F, "body",
     fhead(content_length=b"10") + spec.stdin(1, b"12345"), refused(400))
case("fcgi-body-split-in-many-records", F, "body",
     fhead(body=b"0123456789" * 20) + spec.stdin(1, b"0123456789" * 20, chunk=7),
     Expect(closed=False, echo=(("wsgiwire.body", "0123456789" * 20),)))
case("fcgi-body-without-content-length", F, "body",
     fhead(content_length=b"") + spec.stdin(1, b"abc"),
     Expect(closed=False, echo=(("wsgiwire.body", "abc"), ("CONTENT_LENGTH", None))))
case("fcgi-body-spooled-to-file", F, "body",
     fhead(body=b"s" * 3000) + spec.stdin(1, b"s" * 3000),
     Expect(closed=False, echo=(("CONTENT_LENGTH", "3000"),)), profile="tight",
     note="past spool_threshold: a temporary file, closed after the request")
case("fcgi-body-longer-than-declared-kept", F, "smuggling",
     fhead(content_length=b"5") + spec.stdin(1, b"hello" + SMUGGLED) + SMUGGLED,
     Expect(status=400, app_status=1, warnings=1, or_silent_close=True,
            absent=(b"HTTP_X_SMUGGLED", b"Status: 200")),
     note="the extra STDIN bytes (a whole request) are refused, never served")
case("fcgi-body-longer-than-declared-gets-400", F, "smuggling",
     fhead(content_length=b"5") + spec.stdin(1, b"hello world"),
     refused(400))
case("fcgi-stdin-after-its-end-ignored", F, "smuggling",
     freq(body=b"") + spec.record(spec.STDIN, 1, SMUGGLED) + spec.record(spec.STDIN, 1),
     Expect(closed=False, absent=(b"HTTP_X_SMUGGLED",)), followup_id=3,
     note="input for an ended request id is ignored (section 3.3), never parsed as records")
case("fcgi-params-after-stdin", F, "smuggling",
     fhead(content_length=b"10") + spec.record(spec.STDIN, 1, b"12345")
     + spec.record(spec.PARAMS, 1, spec.pair(b"HTTP_X_SMUGGLED", b"yes")),
     refused(400, absent=(b"HTTP_X_SMUGGLED",)))
case("fcgi-params-after-params-end", F, "smuggling",
     fhead() + spec.params(1, [(b"HTTP_X_SMUGGLED", b"yes")]), refused(400))
case("fcgi-duplicate-begin-during-params", F, "smuggling",
     fbegin() + fbegin(), refused(400))
case("fcgi-duplicate-begin-during-stdin", F, "smuggling",
     fhead(content_length=b"5") + fbegin() + spec.stdin(1, b"hello"), refused(400))
case("fcgi-params-for-unknown-id", F, "smuggling",
     fbegin() + spec.params(7, fparams()), DROPPED,
     note="records for an id never begun: the connection is out of step with the server")
case("fcgi-stdin-for-unknown-id", F, "smuggling", spec.stdin(9, b"x"), DROPPED)
case("fcgi-abort-for-unknown-id", F, "smuggling", spec.abort_request(5), DROPPED)
case("fcgi-pipelined-two-requests-kept", F, "smuggling",
     freq(1) + freq(2), Expect(responses=2, closed=False), followup_id=3)
case("fcgi-interleaved-multiplexed-requests", F, "smuggling",
     fbegin(1) + fbegin(2) + spec.params(2, fparams()) + spec.params(1, fparams())
     + spec.stdin(1) + spec.stdin(2),
     Expect(responses=2, closed=False), followup_id=3)
case("fcgi-no-keep-conn-then-second-request", F, "smuggling",
     freq(1, keep=False) + SMUGGLED, Expect(absent=(b"HTTP_X_SMUGGLED",)),
     note="without FCGI_KEEP_CONN the connection ends after the first response (whole only: "
     "byte by byte, the close may come before the second request's bytes do)",
     bytewise=False)

# ---- FastCGI: ABORT at every state ------------------------------------------------

case("fcgi-abort-before-params", F, "framing", fbegin() + spec.abort_request(1),
     Expect(status=None, ends=((0, 0),), closed=False))
case("fcgi-abort-mid-params", F, "framing",
     fbegin() + spec.stream(spec.PARAMS, 1, spec.pairs(fparams()), end=False)
     + spec.abort_request(1),
     Expect(status=None, ends=((0, 0),), closed=False))
case("fcgi-abort-after-params", F, "framing", fhead() + spec.abort_request(1),
     Expect(status=None, ends=((1, 0),), closed=False),
     note="started: the runtime ends it with appStatus 1")
case("fcgi-abort-mid-stdin", F, "framing",
     fhead(content_length=b"10") + spec.record(spec.STDIN, 1, b"12345")
     + spec.abort_request(1) + spec.record(spec.STDIN, 1, b"67890") + spec.record(spec.STDIN, 1),
     Expect(status=None, ends=((1, 0),), closed=False),
     note="STDIN still in flight after the abort is ignored")
case("fcgi-abort-after-stdin-end", F, "framing", freq() + spec.abort_request(1),
     SERVED_KEPT, note="the response already went out; the abort crosses it and is ignored")
case("fcgi-abort-twice", F, "framing",
     fhead() + spec.abort_request(1) + spec.abort_request(1),
     Expect(status=None, ends=((1, 0),), closed=False))
case("fcgi-abort-no-keep-conn", F, "framing",
     fbegin(keep=False) + spec.abort_request(1), Expect(status=None, ends=((0, 0),)))

# ---- FastCGI: disconnect ----------------------------------------------------------

case("fcgi-disconnect-before-anything", F, "disconnect", (Reset(),), QUIET)
case("fcgi-disconnect-halfclose-before-anything", F, "disconnect", (HalfClose(),), QUIET)
case("fcgi-disconnect-mid-params", F, "disconnect",
     (fbegin() + spec.record(spec.PARAMS, 1, spec.pairs(fparams())[:30]), Pause(0.05), Reset()),
     QUIET)
case("fcgi-disconnect-mid-body", F, "disconnect",
     (fhead(content_length=b"100") + spec.record(spec.STDIN, 1, b"x" * 10), Pause(0.05),
      Reset()), QUIET)
case("fcgi-disconnect-mid-response", F, "disconnect",
     (freq(app="big"), ReadThenReset(65536)), QUIET, app="big")

# ---- FastCGI: slow clients --------------------------------------------------------

TRICKLE_REQ = freq()
case("fcgi-slow-trickle-does-not-delay-others", F, "slow",
     (Trickle(TRICKLE_REQ[:10], 0.2), TRICKLE_REQ[10:]),
     Expect(closed=False, probe_max_latency=0.5), bytewise=False,
     note="a client sending a byte every 0.2 s; another client's requests stay fast")
case("fcgi-slow-trickle-cut-by-header-timeout", F, "slow",
     (Trickle(TRICKLE_REQ[:40], 0.2),),
     Expect(status=None, warnings=1, within=3.0, read_timeout=3.0),
     profile="tight", bytewise=False,
     note="header_timeout 1 s: a head still incomplete after it is cut, however it trickles")
case("fcgi-slow-idle-mid-body-cut", F, "slow",
     fhead(content_length=b"100") + spec.record(spec.STDIN, 1, b"x" * 10),
     Expect(status=None, warnings=1, within=2.9, read_timeout=3.0),
     profile="tight", bytewise=False, note="body_idle_timeout 1 s")
case("fcgi-slow-idle-kept-connection-survives-header-timeout", F, "slow",
     (freq(), Pause(1.6)), SERVED_KEPT, profile="tight", bytewise=False,
     note="an idle kept connection between requests is not a slow head")
case("fcgi-slow-abort-crossing-end-then-idle-survives-header-timeout", F, "slow",
     (freq(), Pause(0.1), spec.abort_request(1), Pause(2.2)), SERVED_KEPT,
     profile="tight", bytewise=False,
     note="an ABORT that crossed our END_REQUEST is ignored; the idle kept connection "
     "must then live to keepalive_timeout (3 s), not be cut as a slow head (1 s)")
case("fcgi-slow-reader-does-not-delay-others", F, "slow",
     # write_timeout is 1 s and the idle sweep runs every second: by 2.5 s the
     # stalled reader has been cut (one warning), whatever the sweep's phase.
     (freq(app="big"), Pause(2.5), Reset()),
     Expect(status=None, warnings=1, probe_max_latency=0.5),
     app="big", profile="tight", bytewise=False,
     note="the client stops reading an 8 MiB reply; another client's requests stay fast")

# ---- Response and app cases, on every protocol --------------------------------------

INJECTION_APPS = [name for name in APPS if name.startswith("inject_")] + [
    "non_latin1_header", "bytes_status"]
SHARED_INJECTION = ["inject_status_crlf", "inject_value_crlf", "inject_name_colon",
                    "inject_value_nul", "inject_conflicting_content_length"]
for protocol, prefix in ((F, "fcgi"), (S, "scgi"), (U, "uwsgi")):
    apps = INJECTION_APPS if protocol == F else SHARED_INJECTION
    for app in apps:
        case(f"{prefix}-response-{app.replace('_', '-')}", protocol, "response",
             req(protocol, app),
             Expect(status=500, warnings=1, closed=protocol != F,
                    absent=(b"injected", b"\xe2\x98\x83", b"should not be sent")),
             app=app)

for protocol, prefix in ((F, "fcgi"), (S, "scgi"), (U, "uwsgi")):
    case(f"{prefix}-response-overflow-content-length", protocol, "response",
         req(protocol, "overflow_content_length"),
         Expect(body=b"hello", warnings=1, closed=protocol != F, absent=(b"X-Smuggled",)),
         app="overflow_content_length",
         note="bytes past the app's own Content-Length are dropped, never a second response")
    case(f"{prefix}-response-short-content-length", protocol, "response",
         req(protocol, "short_content_length"),
         Expect(body=b"hello", app_status=1, warnings=1, closed=protocol != F),
         app="short_content_length",
         note="FastCGI says appStatus 1; SCGI and uwsgi close (the peer sees a short body)")

APP_EXPECT: dict[str, Expect] = {
    "raise_before": Expect(status=500, warnings=1),
    "raise_in_iter_first": Expect(status=500, warnings=1),
    "raise_after": Expect(app_status=1, warnings=1, body=b"partial "),
    "start_twice": Expect(status=500, warnings=1),
    "exc_info_after_head": Expect(app_status=1, warnings=1, body=b"head sent "),
    "exc_info_before_head": Expect(status=503, body=b"replaced"),
    "returns_str": Expect(status=500, warnings=1),
    "returns_none": Expect(status=500, warnings=1),
    "never_starts": Expect(status=500, warnings=1),
    "never_starts_empty": Expect(status=500, warnings=1),
    "write_after_close": Expect(body=b"hello", absent=(b"INJECTED-AFTER-CLOSE",), warnings=1),
    "write_after_close_cl": Expect(body=b"hello", absent=(b"INJECTED-AFTER-CLOSE",), warnings=1),
    "yield_after_close": Expect(body=b"chunk1 chunk2 ", absent=(b"YIELDED-AFTER-CLOSE",)),
}
BUG_WRITE_AFTER_CLOSE = (
    "wsgiwire/core/_response.py Response.write: write() is still accepted after finish() "
    "(e.g. from the iterable's close(), called after the body ended), so bytes the app writes "
    "then go out as more body; with no Content-Length the peer cannot tell. Fix: a 'finished' "
    "flag set by finish(); write() after it raises StartResponseError (logged once, not sent)."
)
for protocol, prefix in ((F, "fcgi"), (S, "scgi"), (U, "uwsgi")):
    for app, app_expect in APP_EXPECT.items():
        # FastCGI keeps the connection, even after a cut response (appStatus 1 says
        # so); SCGI and uwsgi close it, which is also how they signal the cut.
        case(f"{prefix}-app-{app.replace('_', '-')}", protocol, "app", req(protocol, app),
             replace(app_expect, closed=False) if protocol == F else app_expect, app=app,
             )

# ---- SCGI: framing -------------------------------------------------------------------

GOOD_SCGI_BLOCK = sblock([(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1"),
                          *base_params(content_length=None)])
case("scgi-length-30-digits", S, "framing", b"1" * 30 + b":" + GOOD_SCGI_BLOCK + b",",
     refused(431, within=1.0), note="refused at the 6th digit (max_params_bytes has 5)")
case("scgi-length-missing-colon", S, "framing",
     str(len(GOOD_SCGI_BLOCK)).encode() + GOOD_SCGI_BLOCK + b",", refused(400))
case("scgi-length-letters", S, "framing", b"abc:" + GOOD_SCGI_BLOCK + b",", refused(400))
case("scgi-length-empty", S, "framing", b":" + GOOD_SCGI_BLOCK + b",", refused(400))
case("scgi-length-leading-zero", S, "framing",
     b"0" + snet(GOOD_SCGI_BLOCK), refused(400))
case("scgi-length-negative", S, "framing", b"-" + snet(GOOD_SCGI_BLOCK), refused(400))
case("scgi-length-plus", S, "framing", b"+" + snet(GOOD_SCGI_BLOCK), refused(400))
case("scgi-length-space", S, "framing", b" " + snet(GOOD_SCGI_BLOCK), refused(400))
case("scgi-length-non-ascii-digits", S, "framing",
     UNICODE_DIGITS + b":" + GOOD_SCGI_BLOCK + b",", refused(400))
case("scgi-missing-comma", S, "framing", snet(GOOD_SCGI_BLOCK)[:-1] + b";", refused(400))
case("scgi-length-beyond-data-then-eof", S, "framing",
     (b"500:" + GOOD_SCGI_BLOCK, HalfClose()), refused(400))
case("scgi-eof-in-length", S, "framing", (b"12", HalfClose()), refused(400))
case("scgi-length-over-limit", S, "framing", (b"70000:" + GOOD_SCGI_BLOCK,),
     refused(431, within=1.0), note="refused before the block is waited for")
case("scgi-zero-length-netstring", S, "framing", b"0:,", refused(400))
case("scgi-block-without-final-nul", S, "framing",
     snet(GOOD_SCGI_BLOCK + b"HTTP_X\0y"), refused(400))
case("scgi-odd-number-of-strings", S, "framing",
     snet(GOOD_SCGI_BLOCK + b"HTTP_X\0"), refused(400))
case("scgi-nul-in-value-shifts-pairs", S, "framing",
     snet(GOOD_SCGI_BLOCK + b"HTTP_X\0a\0b\0"), refused(400),
     note="NUL is the separator: a NUL inside a value leaves an odd number of strings")
case("scgi-empty-name", S, "framing", snet(GOOD_SCGI_BLOCK + b"\0x\0"), refused(400))
case("scgi-http-request-on-scgi-port", S, "framing",
     b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", refused(400))
case("scgi-immediate-eof", S, "framing", (HalfClose(),), QUIET)

# ---- SCGI: params ----------------------------------------------------------------------

case("scgi-content-length-missing", S, "params", sreq(head=[(b"SCGI", b"1")]), refused(400))
case("scgi-content-length-duplicated", S, "params",
     sreq(head=[(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1"), (b"CONTENT_LENGTH", b"0")]),
     refused(400))
case("scgi-content-length-not-first", S, "params",
     sreq(head=[(b"SCGI", b"1"), (b"CONTENT_LENGTH", b"0")]), refused(400))
case("scgi-content-length-empty", S, "params", sreq(content_length=b""), refused(400))
for label, value in BAD_CONTENT_LENGTHS.items():
    case(f"scgi-content-length-{label}", S, "params", sreq(content_length=value), refused(400))
case("scgi-content-length-leading-zeros", S, "params",
     sreq(content_length=b"005", body=b"hello"), Expect(echo=(("CONTENT_LENGTH", "5"),)))
case("scgi-header-missing", S, "params", sreq(head=[(b"CONTENT_LENGTH", b"0")]), refused(400))
case("scgi-header-not-1", S, "params",
     sreq(head=[(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"2")]), refused(400))
case("scgi-header-repeated", S, "params",
     sreq(head=[(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1"), (b"SCGI", b"1")]), refused(400))
case("scgi-non-latin1-bytes", S, "params",
     sreq(extra=[(b"HTTP_X_UTF8", UTF8), (b"HTTP_X_BAD", INVALID_UTF8),
                 (b"HTTP_\xff\xfe", HIGH_BYTES)]),
     Expect(echo=(("HTTP_X_UTF8", UTF8.decode("latin-1")),
                  ("HTTP_X_BAD", INVALID_UTF8.decode("latin-1")),
                  ("HTTP_\xff\xfe", HIGH_BYTES.decode("latin-1")))))
case("scgi-cve-2019-11043-newline-escaped-empty-path-info", S, "security",
     snet(sblock([(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1"),
                  *with_path(base_params(content_length=None),
                             CVE_PATHS["newline-escaped-empty-path-info"])])),
     SERVED)

# ---- SCGI: limits, body, smuggling, security --------------------------------------------

case("scgi-too-many-headers", S, "limits",
     sreq(extra=[(b"H%d" % i, b"") for i in range(600)]), refused(431))
case("scgi-name-over-limit", S, "limits", sreq(extra=[(b"N" * 2000, b"v")]), refused(431))
case("scgi-value-over-limit", S, "limits", sreq(extra=[(b"HTTP_X", b"v" * 40000)]),
     refused(431))
case("scgi-declared-body-over-max", S, "limits",
     sreq(content_length=b"2147483648"), refused(413, within=1.0),
     note="refused before any body is read")
case("scgi-body-spooled-to-file", S, "body", sreq(body=b"s" * 3000),
     Expect(echo=(("CONTENT_LENGTH", "3000"),)), profile="tight")
case("scgi-body-shorter-then-eof", S, "body",
     (sreq(content_length=b"10") + b"12345", HalfClose()), refused(400))
SMUGGLED_SCGI = sreq(extra=[(b"HTTP_X_SMUGGLED", b"yes")])
case("scgi-body-longer-than-declared", S, "smuggling",
     sreq(body=b"hello") + SMUGGLED_SCGI,
     Expect(echo=(("wsgiwire.body", "hello"),), absent=(b"HTTP_X_SMUGGLED",)),
     note="bytes past CONTENT_LENGTH are drained and dropped: one request per connection")
case("scgi-httpoxy", S, "security", sreq(extra=HTTPOXY), HTTPOXY_EXPECT)
case("scgi-forwarded-headers-never-override", S, "security", sreq(extra=FORWARDED_HEADERS),
     FORWARDED_EXPECT)
case("scgi-wsgi-keys-as-params", S, "security", sreq(extra=WSGI_KEYS_AS_PARAMS),
     WSGI_KEYS_EXPECT)

# ---- SCGI: disconnect and slow ---------------------------------------------------------------

case("scgi-disconnect-mid-head", S, "disconnect",
     (sreq()[:40], Pause(0.05), Reset()), QUIET)
case("scgi-disconnect-mid-body", S, "disconnect",
     (sreq(content_length=b"100") + b"x" * 10, Pause(0.05), Reset()), QUIET)
case("scgi-disconnect-mid-response", S, "disconnect",
     (sreq("big"), ReadThenReset(65536)), QUIET, app="big")
case("scgi-slow-stall-mid-head-cut", S, "slow", sreq()[:40],
     Expect(status=None, warnings=1, within=2.9, read_timeout=3.0),
     profile="tight", bytewise=False, note="header_timeout 1 s")
TRICKLE_SCGI = sreq()
case("scgi-slow-trickle-does-not-delay-others", S, "slow",
     (Trickle(TRICKLE_SCGI[:10], 0.2), TRICKLE_SCGI[10:]),
     Expect(probe_max_latency=0.5), bytewise=False)

# ---- uwsgi: framing -----------------------------------------------------------------------

GOOD_UWSGI_BLOCK = ublock(base_params(content_length=b"0"))
case("uwsgi-datasize-beyond-data-then-eof", U, "framing",
     (upacket(GOOD_UWSGI_BLOCK, datasize=len(GOOD_UWSGI_BLOCK) + 100), HalfClose()),
     refused(400))
case("uwsgi-datasize-cuts-the-vars", U, "framing",
     upacket(GOOD_UWSGI_BLOCK, datasize=len(GOOD_UWSGI_BLOCK) - 3), refused(400))
case("uwsgi-datasize-zero", U, "framing", upacket(b""), refused(400))
case("uwsgi-datasize-65535-then-eof", U, "framing",
     (upacket(GOOD_UWSGI_BLOCK, datasize=65535), HalfClose()), refused(400))
for modifier1 in (1, 5, 255):
    case(f"uwsgi-modifier1-{modifier1}", U, "framing",
         upacket(GOOD_UWSGI_BLOCK, modifier1=modifier1), refused(501, within=1.0))
case("uwsgi-modifier2-nonzero", U, "framing", upacket(GOOD_UWSGI_BLOCK, modifier2=1),
     refused(501))
case("uwsgi-http-request-on-uwsgi-port", U, "framing", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
     refused(501))
case("uwsgi-var-without-value-length", U, "framing",
     upacket(GOOD_UWSGI_BLOCK + u16(6) + b"HTTP_X"), refused(400))
case("uwsgi-value-runs-past-block", U, "framing",
     upacket(GOOD_UWSGI_BLOCK + u16(6) + b"HTTP_X" + u16(50) + b"short"), refused(400))
case("uwsgi-stray-byte-at-end", U, "framing", upacket(GOOD_UWSGI_BLOCK + b"\x01"),
     refused(400))
case("uwsgi-empty-key", U, "framing", upacket(GOOD_UWSGI_BLOCK + ublock([(b"", b"x")])),
     refused(400))
case("uwsgi-truncated-header-then-eof", U, "framing", (b"\x00\x10", HalfClose()),
     refused(400))
case("uwsgi-immediate-eof", U, "framing", (HalfClose(),), QUIET)

# ---- uwsgi: params, limits, body, security -------------------------------------------------

case("uwsgi-content-length-repeated-different", U, "params",
     ureq(extra=[(b"CONTENT_LENGTH", b"5")], body=b""), refused(400))
case("uwsgi-content-length-repeated-same", U, "params",
     ureq(body=b"hello", extra=[(b"CONTENT_LENGTH", b"5")]),
     Expect(echo=(("wsgiwire.body", "hello"),)))
for label, value in BAD_CONTENT_LENGTHS.items():
    case(f"uwsgi-content-length-{label}", U, "params", ureq(content_length=value), refused(400))
case("uwsgi-nul-and-non-latin1-bytes", U, "params",
     ureq(extra=[(b"HTTP_X\0NUL", b"a\0b"), (b"HTTP_X_UTF8", UTF8),
                 (b"HTTP_\xff", HIGH_BYTES)]),
     Expect(echo=(("HTTP_X\0NUL", "a\0b"), ("HTTP_X_UTF8", UTF8.decode("latin-1")),
                  ("HTTP_\xff", HIGH_BYTES.decode("latin-1")))))
case("uwsgi-modifier1-30-strips-script-name", U, "params",
     ureq(modifier1=30, pairs=with_path(base_params(content_length=b"0"),
                                        [(b"SCRIPT_NAME", b"/app"),
                                         (b"PATH_INFO", b"/app/x"),
                                         (b"REQUEST_URI", b"/app/x")])),
     Expect(echo=(("SCRIPT_NAME", "/app"), ("PATH_INFO", "/x"))))
MAGIC: Pairs = [(b"UWSGI_SCRIPT", b"os:system"), (b"UWSGI_CHDIR", b"/"),
                (b"UWSGI_FILE", b"/etc/passwd"), (b"UWSGI_SETENV", b"PATH=/tmp"),
                (b"UWSGI_PYHOME", b"/tmp"), (b"UWSGI_SCHEME", b"https"),
                (b"UWSGI_APPID", b"x")]
case("uwsgi-magic-vars-dropped", U, "security", ureq(extra=MAGIC),
     Expect(echo=(*((name.decode(), None) for name, _ in MAGIC),
                  ("wsgi.url_scheme", "http"), ("REQUEST_SCHEME", None))))
case("uwsgi-httpoxy", U, "security", ureq(extra=HTTPOXY), HTTPOXY_EXPECT)
case("uwsgi-forwarded-headers-never-override", U, "security", ureq(extra=FORWARDED_HEADERS),
     FORWARDED_EXPECT)
case("uwsgi-cve-2019-11043-raw-newline-in-path-info", U, "security",
     ureq(pairs=with_path(base_params(content_length=b"0"),
                          CVE_PATHS["raw-newline-in-path-info"])), SERVED)
case("uwsgi-server-protocol-crlf-injection", U, "security",
     ureq(pairs=with_protocol(b"HTTP/1.1\r\nSet-Cookie: injected=1")),
     Expect(absent=(b"injected=1\r\n",)),
     note="the status line's version comes from SERVER_PROTOCOL: only HTTP/1.0 or 1.1 pass")
case("uwsgi-server-protocol-http2", U, "security",
     ureq(pairs=with_protocol(b"HTTP/2.0")),
     Expect(absent=(b"HTTP/2.0 200",)))
case("uwsgi-too-many-vars", U, "limits", ureq(extra=[(b"H%d" % i, b"") for i in range(600)]),
     refused(431))
case("uwsgi-value-over-limit", U, "limits", ureq(extra=[(b"HTTP_X", b"v" * 40000)]),
     refused(431))
case("uwsgi-declared-body-over-max", U, "limits", ureq(content_length=b"5000"),
     refused(413, within=1.0), profile="tight")
case("uwsgi-body-spooled-to-file", U, "body", ureq(body=b"s" * 3000),
     Expect(echo=(("CONTENT_LENGTH", "3000"),)), profile="tight")
case("uwsgi-body-shorter-then-eof", U, "body",
     (ureq(content_length=b"10") + b"12345", HalfClose()), refused(400))
SMUGGLED_UWSGI = ureq(extra=[(b"HTTP_X_SMUGGLED", b"yes")])
case("uwsgi-body-longer-than-declared", U, "smuggling", ureq(body=b"hello") + SMUGGLED_UWSGI,
     Expect(echo=(("wsgiwire.body", "hello"),), absent=(b"HTTP_X_SMUGGLED",)))
case("uwsgi-body-without-content-length", U, "smuggling",
     ureq(content_length=b"") + SMUGGLED_UWSGI,
     Expect(echo=(("wsgiwire.body", ""),), absent=(b"HTTP_X_SMUGGLED",)),
     note="no CONTENT_LENGTH: no body; what follows is never a second request")

# ---- uwsgi: disconnect and slow ---------------------------------------------------------------

case("uwsgi-disconnect-mid-vars", U, "disconnect", (ureq()[:30], Pause(0.05), Reset()), QUIET)
case("uwsgi-disconnect-mid-body", U, "disconnect",
     (ureq(content_length=b"100") + b"x" * 10, Pause(0.05), Reset()), QUIET)
case("uwsgi-disconnect-mid-response", U, "disconnect",
     (ureq("big"), ReadThenReset(65536)), QUIET, app="big")
case("uwsgi-slow-idle-mid-body-cut", U, "slow", ureq(content_length=b"100") + b"x" * 10,
     Expect(status=None, warnings=1, within=2.9, read_timeout=3.0),
     profile="tight", bytewise=False, note="body_idle_timeout 1 s")


CASES: tuple[Case, ...] = tuple(CASES_LIST)


def by_name(name: str) -> Case:
    for item in CASES:
        if item.name == name:
            return item
    raise KeyError(name)


def _ensure_good_request_is_valid() -> None:
    """The probe request is the same for every case; built here once to fail early."""
    for protocol in (F, S, U):
        good_request(protocol)


_ensure_good_request_is_valid()
