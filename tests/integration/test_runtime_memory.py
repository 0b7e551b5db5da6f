"""Memory stays flat while a gigabyte goes through a worker, either way.

* A 1 GiB upload through nginx with ``fastcgi_request_buffering off``, sent chunked
  from a generator, read by the app in 64 KiB pieces and hashed;
* a 1 GiB response the app yields in 64 KiB pieces, read and discarded by the client.

The worker's peak resident set (VmHWM, reset after a warm-up through
``/proc/PID/clear_refs`` when possible, and VmRSS sampled every 50 ms) must grow by
less than 32 MiB. The body past 4 MiB spools to a temporary file: the backend gets a
private TMPDIR, removed afterwards and checked empty. nginx runs
``server-configs/nginx/fastcgi-nobuffer.conf`` with ``client_max_body_size`` raised
from 64m (the only change) so a 1 GiB body is allowed at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._ops_support import OpsBackend, memory_kib, nginx_in_front, ops_backend
from .servers import LOOPBACK, Stage, config_path

pytestmark = pytest.mark.integration

GIB = 1 << 30
MIB = 1 << 20
PIECE = 65536
GROWTH_LIMIT_MIB = 32
SAMPLE_EVERY = 0.05
TRANSFER_TIMEOUT = 120.0


def nobuffer_config(tmp_path: Path) -> Path:
    """fastcgi-nobuffer.conf, with client_max_body_size 64m raised to 2g."""
    text = config_path("nginx", "fastcgi-nobuffer").read_text()
    limit = "client_max_body_size 64m;"
    assert text.count(limit) == 1, "fastcgi-nobuffer.conf changed: update this test"
    path = tmp_path / "fastcgi-nobuffer-2g.conf"
    path.write_text(text.replace(limit, "client_max_body_size 2g;"))
    return path


class MemoryWatch:
    """Peak memory of ``pid`` from now on: VmHWM (reset first if the kernel lets us) and
    VmRSS sampled on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.reset = False
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # 5: reset the peak RSS
            self.reset = True
        self.start_rss = memory_kib(pid, "VmRSS")
        self.start_hwm = memory_kib(pid, "VmHWM")
        self.max_rss = self.start_rss
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            with contextlib.suppress(AssertionError):
                self.max_rss = max(self.max_rss, memory_kib(self.pid, "VmRSS"))
                self.samples += 1

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self.end_hwm = memory_kib(self.pid, "VmHWM")

    @property
    def growth_mib(self) -> float:
        """Peak growth: over the reset peak when reset, else over the resident start."""
        base = self.start_hwm if self.reset else self.start_rss
        return (max(self.end_hwm, self.max_rss) - base) / 1024

    def __str__(self) -> str:
        return (
            f"RSS {self.start_rss / 1024:.1f} MiB at the start, peak "
            f"{max(self.end_hwm, self.max_rss) / 1024:.1f} MiB (VmHWM "
            f"{'reset' if self.reset else 'not reset'}, {self.samples} samples): "
            f"+{self.growth_mib:.1f} MiB"
        )


@contextlib.contextmanager
def one_worker(stage: Stage, tmp_path: Path) -> Iterator[tuple[OpsBackend, int]]:
    with ops_backend(stage, tmp_path, ("--workers", "1")) as backend:
        (pid,) = backend.worker_pids()
        yield backend, pid
        leftovers = list(backend.tmpdir.iterdir())
        assert not leftovers, f"spool files left behind: {leftovers}"


def upload_pieces(total: int, seed: bytes, digest: hashlib._Hash) -> Iterator[bytes]:
    """``total`` bytes in 1 MiB chunks, each numbered, hashed into ``digest`` as sent."""
    for index in range(total // MIB):
        chunk = struct.pack(">Q", index) + seed[8:]
        digest.update(chunk)
        yield chunk


def post_chunked(port: int, path: str, pieces: Iterator[bytes]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=TRANSFER_TIMEOUT)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.endheaders()
        for chunk in pieces:
            conn.send(b"%x\r\n" % len(chunk))
            conn.send(chunk)
            conn.send(b"\r\n")
        conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_a_1_gib_streamed_upload_keeps_the_worker_flat(stage: Stage, tmp_path: Path) -> None:
    with one_worker(stage, tmp_path) as (backend, pid), nginx_in_front(
        backend, nobuffer_config(tmp_path)
    ) as nginx:
        seed = os.urandom(MIB)
        warm = hashlib.sha256()
        status, body = post_chunked(nginx.port, "/warm/upload", upload_pieces(4 * MIB, seed, warm))
        assert (status, body) == (200, f"{4 * MIB} {warm.hexdigest()}\n".encode())
        sent = hashlib.sha256()
        began = time.monotonic()
        with MemoryWatch(pid) as watch:
            status, body = post_chunked(nginx.port, "/big/upload", upload_pieces(GIB, seed, sent))
        took = time.monotonic() - began
        assert status == 200, (body[:300], nginx.error_log_text(), backend.output())
        assert body == f"{GIB} {sent.hexdigest()}\n".encode()
        assert watch.growth_mib < GROWTH_LIMIT_MIB, str(watch)
        print(f"1 GiB upload in {took:.1f} s ({GIB / MIB / took:.0f} MiB/s); {watch}")


def test_a_1_gib_streamed_response_keeps_the_worker_flat(stage: Stage, tmp_path: Path) -> None:
    with one_worker(stage, tmp_path) as (backend, pid), nginx_in_front(
        backend, nobuffer_config(tmp_path)
    ) as nginx:

        def download(size: int) -> int:
            conn = http.client.HTTPConnection(LOOPBACK, nginx.port, timeout=TRANSFER_TIMEOUT)
            try:
                conn.request("GET", f"/big/download?{size}")
                resp = conn.getresponse()
                assert resp.status == 200
                assert resp.getheader("Content-Length") == str(size)
                received = 0
                while buf := resp.read(MIB):
                    # Every 64 KiB piece starts with its index: check the first and last.
                    first = received // PIECE
                    last = (received + len(buf) - 1) // PIECE
                    assert struct.unpack_from(">Q", buf, 0)[0] == first
                    assert struct.unpack_from(">Q", buf, (last - first) * PIECE)[0] == last
                    received += len(buf)
                return received
            finally:
                conn.close()

        assert download(4 * MIB) == 4 * MIB
        began = time.monotonic()
        with MemoryWatch(pid) as watch:
            received = download(GIB)
        took = time.monotonic() - began
        assert received == GIB, (nginx.error_log_text(), backend.output())
        assert watch.growth_mib < GROWTH_LIMIT_MIB, str(watch)
        print(f"1 GiB download in {took:.1f} s ({GIB / MIB / took:.0f} MiB/s); {watch}")
