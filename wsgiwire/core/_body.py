"""``wsgi.input``: the request body, collected by the front-end, read by the app.

The front-end feeds bytes as the codec yields them; the body is complete
before the application runs, so ``wsgi.input`` never blocks and never pulls
from a socket. Small bodies stay in memory; past ``Limits.spool_threshold``
they move to an anonymous temporary file, so a 1 GiB upload costs disk, not
memory. The stream the app gets is an ordinary ``io.BytesIO`` or a buffered
temporary file holding exactly the body, so ``read()``, ``read(n)``,
``read(None)``, ``read(-1)``, ``readline(size)``, ``readlines(hint)`` and
iteration all have their io semantics and stop at the end of the body.
"""

from __future__ import annotations

import errno
import io

from .._errors import BadRequest, ProtocolError
from .._limitcheck import check_body_size
from .._limits import DEFAULT_LIMITS, Limits

# typing and collections.abc cost a CGI start-up about 9 ms: annotations only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Final

__all__ = ["BodyBuffer", "SpoolError", "attach_input", "EMPTY_BODY_SIZE"]

# A full disk or a file size limit is "507 Insufficient Storage" (RFC 4918): the
# request was fine, the server has no room for it now. Any other failure of the
# spool (EIO, EMFILE, a missing TMPDIR) is the server's: 500.
_NO_ROOM: Final = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


class SpoolError(ProtocolError):
    """The body could not be stored (disk full, file too large, I/O error).

    Raised by :class:`BodyBuffer` with the temporary file already closed (its
    space given back); carries the status the request should get (507 or 500).
    """

    def __init__(self, exc: OSError) -> None:
        code = exc.errno or 0
        name = errno.errorcode.get(code, "error")
        super().__init__(
            f"cannot store the request body: {exc.strerror or exc} ({name})",
            status_hint=507 if code in _NO_ROOM else 500,
        )
        self.errno = code

EMPTY_BODY_SIZE: Final = 0


class BodyBuffer:
    """Collects one request body, checking it against the declared length and the limits.

    ``declared`` is the parsed CONTENT_LENGTH (``None`` when none was declared:
    the body then ends where the protocol says it ends).
    """

    __slots__ = ("_chunks", "_file", "_limits", "_spool_at", "declared", "received")

    def __init__(self, declared: int | None, limits: Limits = DEFAULT_LIMITS) -> None:
        if declared is not None:
            check_body_size(limits, declared)
        self.declared = declared
        self.received = 0
        self._chunks: list[bytes] = []
        self._file: IO[bytes] | None = None
        self._limits = limits
        self._spool_at = limits.spool_threshold

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add body bytes. Raises if the body grows past its declared length or the limit."""
        if not data:
            return
        total = self.received + len(data)
        if self.declared is not None and total > self.declared:
            raise BadRequest(
                f"request body longer than CONTENT_LENGTH ({total} > {self.declared})"
            )
        check_body_size(self._limits, total)
        self.received = total
        if self._file is not None:
            try:
                self._file.write(data)
            except OSError as exc:
                self.discard()
                raise SpoolError(exc) from None
        elif total > self._spool_at:
            self._spool(data)
        else:
            self._chunks.append(bytes(data))

    def _spool(self, data: bytes | bytearray | memoryview) -> None:
        """Move the body so far, and ``data``, to a temporary file."""
        import tempfile  # only when spooling: a CGI request rarely needs it

        spool = None
        try:
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - owned by the stream returned
            for chunk in self._chunks:
                spool.write(chunk)
            spool.write(data)
        except OSError as exc:
            if spool is not None:
                _close_quietly(spool)
            self.discard()
            raise SpoolError(exc) from None
        self._chunks.clear()
        self._file = spool

    @property
    def complete(self) -> bool:
        """True once the declared length has arrived (never true without a declared length)."""
        return self.declared is not None and self.received >= self.declared

    def finish(self) -> IO[bytes]:
        """The body as a readable stream at position 0. Raises if the body was short."""
        if self.declared is not None and self.received < self.declared:
            raise BadRequest(
                f"request body shorter than CONTENT_LENGTH ({self.received} < {self.declared})"
            )
        if self._file is not None:
            try:
                self._file.flush()
                self._file.seek(0)
            except OSError as exc:
                self.discard()
                raise SpoolError(exc) from None
            return self._file
        chunks = self._chunks
        if not chunks:
            return io.BytesIO()
        if len(chunks) == 1:
            return io.BytesIO(chunks[0])
        return io.BytesIO(b"".join(chunks))

    def discard(self) -> None:
        """Drop what was collected (the request was aborted or failed)."""
        self._chunks.clear()
        if self._file is not None:
            _close_quietly(self._file)
            self._file = None


def _close_quietly(file: IO[bytes]) -> None:
    """Close a spool file; a buffered one that cannot flush (disk full) still closes."""
    try:
        file.close()
    except OSError:
        raw = getattr(file, "raw", None)
        if raw is not None:
            try:
                raw.close()
            except OSError:
                pass


def attach_input(environ: dict[str, Any], stream: IO[bytes], *, terminated: bool) -> None:
    """Set ``wsgi.input`` (and ``wsgi.input_terminated`` when no length was declared)."""
    environ["wsgi.input"] = stream
    if terminated:
        environ["wsgi.input_terminated"] = True
