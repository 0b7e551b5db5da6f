"""Listening sockets and the peer allow-list (``wsgiwire.adapters._listeners``).

* ``parse_bind`` for every ``--bind`` form and every malformed one.
* ``open_listener``: unix sockets (mode, umask, what is and is not replaced), TCP over
  IPv4 and IPv6 on loopback, ``fd:N`` adoption.
* ``inherited_fd0`` and ``systemd_listeners`` in child processes whose fd 0 / fds 3..
  are set up exactly as mod_fcgid, spawn-fcgi and systemd set them up.
* ``PeerFilter``: IPv4, IPv6 and IPv4-mapped peers compared as addresses; unix peers
  pass; a set-but-empty or malformed list fails closed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsgiwire.adapters._listeners import (
    DEFAULT_SOCKET_MODE,
    BindError,
    BindSpec,
    PeerFilter,
    open_listener,
    parse_bind,
    remove_socket_file,
    systemd_listeners,
)

REPO = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT = 20.0


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A fresh dir under /tmp: unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ww-lst-", dir="/tmp"))
    try:
        yield path
    finally:
        for entry in path.iterdir():
            entry.unlink()
        path.rmdir()


@contextlib.contextmanager
def listening(spec: str, **options: int) -> Iterator[socket.socket]:
    sock = open_listener(parse_bind(spec), **options)
    try:
        yield sock
    finally:
        sock.close()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def accepts(sock: socket.socket) -> bool:
    """Connect to ``sock``'s address and accept the connection on it (bounded)."""
    family = sock.family
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(sock.getsockname())
        sock.settimeout(5)
        try:
            conn, _ = sock.accept()
        finally:
            sock.setblocking(False)
        conn.close()
    return True


# -- parse_bind -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected", "shown"),
    [
        ("unix:/run/app.sock", BindSpec("unix", path="/run/app.sock"), "unix:/run/app.sock"),
        ("unix:relative.sock", BindSpec("unix", path="relative.sock"), "unix:relative.sock"),
        ("/run/app.sock", BindSpec("unix", path="/run/app.sock"), "unix:/run/app.sock"),
        ("127.0.0.1:9000", BindSpec("tcp", host="127.0.0.1", port=9000), "127.0.0.1:9000"),
        ("0.0.0.0:0", BindSpec("tcp", host="0.0.0.0", port=0), "0.0.0.0:0"),
        ("localhost:65535", BindSpec("tcp", host="localhost", port=65535), "localhost:65535"),
        (":9000", BindSpec("tcp", host="127.0.0.1", port=9000), "127.0.0.1:9000"),
        ("[::1]:9000", BindSpec("tcp", host="::1", port=9000), "[::1]:9000"),
        ("[::]:80", BindSpec("tcp", host="::", port=80), "[::]:80"),
        ("fd:3", BindSpec("fd", fd=3), "fd:3"),
        ("fd:0", BindSpec("fd", fd=0), "fd:0"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_parse_bind_forms(text: str, expected: BindSpec, shown: str) -> None:
    spec = parse_bind(text)
    assert spec == expected
    assert str(spec) == shown


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1:http", "bad port"),
        ("127.0.0.1:65536", "bad port"),
        ("127.0.0.1:-1", "bad port"),
        ("127.0.0.1:", "bad port"),
        ("[::1]:x", "bad port"),
        ("localhost", "expected HOST:PORT"),
        ("[::1]", "expected [v6address]:PORT"),
        ("[::1]9000", "expected [v6address]:PORT"),
        ("unix:", "needs a path"),
        ("fd:x", "needs a number"),
        ("fd:", "needs a number"),
    ],
)
def test_parse_bind_errors(text: str, message: str) -> None:
    with pytest.raises(BindError, match=message.replace("[", r"\[")):
        parse_bind(text)


def test_negative_fd_is_a_bind_error() -> None:
    with pytest.raises(BindError):
        open_listener(parse_bind("fd:-1"))


# -- unix sockets -----------------------------------------------------------------------
def test_unix_socket_mode_0660_by_default_and_umask_untouched(short_dir: Path) -> None:
    path = short_dir / "app.sock"
    umask_before = os.umask(0o022)
    os.umask(umask_before)
    with listening(f"unix:{path}") as sock:
        assert sock.family == socket.AF_UNIX
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        assert mode_of(path) == DEFAULT_SOCKET_MODE == 0o660
        assert not sock.getblocking()
        assert sock.get_inheritable()
        assert accepts(sock)
    current = os.umask(umask_before)
    assert current == umask_before  # the process umask was restored


def test_unix_socket_mode_option(short_dir: Path) -> None:
    path = short_dir / "app.sock"
    with listening(str(path), socket_mode=0o600):
        assert mode_of(path) == 0o600


@pytest.mark.parametrize(("umask", "mode"), [(0o077, 0o700), (0o002, 0o775), (0o027, 0o750)])
def test_unix_socket_umask_variant(short_dir: Path, umask: int, mode: int) -> None:
    """flup's ``umask`` argument: the socket gets 0777 & ~umask, no chmod afterwards."""
    path = short_dir / "app.sock"
    with listening(f"unix:{path}", umask=umask):
        assert mode_of(path) == mode


def test_existing_regular_file_is_refused_and_left_intact(short_dir: Path) -> None:
    path = short_dir / "app.sock"
    path.write_bytes(b"precious data\n")
    path.chmod(0o640)
    with pytest.raises(BindError, match="not a socket"):
        open_listener(parse_bind(f"unix:{path}"))
    assert path.read_bytes() == b"precious data\n"
    assert mode_of(path) == 0o640


def test_symlink_to_a_socket_is_refused_not_followed(short_dir: Path) -> None:
    real = short_dir / "real.sock"
    link = short_dir / "link.sock"
    with listening(f"unix:{real}"):
        link.symlink_to(real)
        with pytest.raises(BindError, match="not a socket"):
            open_listener(parse_bind(f"unix:{link}"))
        assert link.is_symlink()


def test_stale_socket_is_replaced(short_dir: Path) -> None:
    path = short_dir / "app.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays: a server that died without cleaning up
    path.chmod(0o600)
    with socket.socket(socket.AF_UNIX) as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(str(path))
    with listening(f"unix:{path}") as sock:
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        assert mode_of(path) == 0o660  # a new file, not the old one
        assert accepts(sock)


def test_live_socket_is_refused_and_keeps_serving(short_dir: Path) -> None:
    path = short_dir / "app.sock"
    with listening(f"unix:{path}") as live:
        inode = os.lstat(path).st_ino
        with pytest.raises(BindError, match="in use"):
            open_listener(parse_bind(f"unix:{path}"))
        assert os.lstat(path).st_ino == inode
        assert accepts(live)


def test_unix_socket_in_missing_directory_is_a_bind_error(short_dir: Path) -> None:
    with pytest.raises(BindError, match="cannot bind"):
        open_listener(parse_bind(f"unix:{short_dir}/no/such/dir/app.sock"))


def test_remove_socket_file_removes_sockets_only(short_dir: Path) -> None:
    sock_path = short_dir / "app.sock"
    file_path = short_dir / "data.txt"
    file_path.write_text("keep")
    with listening(f"unix:{sock_path}"):
        remove_socket_file(str(sock_path))
        assert not sock_path.exists()
    remove_socket_file(str(file_path))
    assert file_path.read_text() == "keep"
    remove_socket_file(str(short_dir / "missing.sock"))  # no error


# -- TCP ----------------------------------------------------------------------------------
def test_tcp_ipv4_loopback_ephemeral_port() -> None:
    with listening("127.0.0.1:0") as sock:
        host, port = sock.getsockname()
        assert (sock.family, host) == (socket.AF_INET, "127.0.0.1")
        assert port > 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        assert not sock.getblocking()
        assert sock.get_inheritable()
        assert accepts(sock)


def test_tcp_ipv6_loopback_ephemeral_port_is_v6_only() -> None:
    with listening("[::1]:0") as sock:
        host, port, _, _ = sock.getsockname()
        assert (sock.family, host) == (socket.AF_INET6, "::1")
        assert port > 0
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        assert accepts(sock)


def test_tcp_port_in_use_is_a_bind_error() -> None:
    with listening("127.0.0.1:0") as first:
        port = first.getsockname()[1]
        with pytest.raises(BindError, match=f"cannot listen on 127.0.0.1:{port}"):
            open_listener(parse_bind(f"127.0.0.1:{port}"))


# -- fd:N -------------------------------------------------------------------------------
def test_fd_adopts_a_listening_socket() -> None:
    with listening("127.0.0.1:0") as original:
        fd = os.dup(original.fileno())
        adopted = open_listener(parse_bind(f"fd:{fd}"))
        try:
            assert adopted.fileno() == fd
            assert adopted.getsockname() == original.getsockname()
            assert not adopted.getblocking()
            assert accepts(adopted)
        finally:
            adopted.close()


def test_fd_refuses_a_socket_that_is_not_listening_and_keeps_the_fd() -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        fd = bound.fileno()
        with pytest.raises(BindError, match="not listening"):
            open_listener(parse_bind(f"fd:{fd}"))
        os.fstat(fd)  # still open: the caller owns it
        assert bound.getsockname()[1] > 0


def test_fd_refuses_a_pipe_and_a_closed_fd() -> None:
    read_fd, write_fd = os.pipe()
    try:
        with pytest.raises(BindError, match="not a socket"):
            open_listener(parse_bind(f"fd:{read_fd}"))
        os.fstat(read_fd)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    with pytest.raises(BindError, match="not a socket"):
        open_listener(parse_bind(f"fd:{read_fd}"))  # closed just above


# -- fd 0 and systemd, in child processes ----------------------------------------------------
FD0_CHILD = textwrap.dedent(
    """
    import json, os, socket, sys
    from wsgiwire.adapters._listeners import inherited_fd0
    sock = inherited_fd0()
    report = {"socket": sock is not None, "fd0_open": True}
    try:
        os.fstat(0)
    except OSError:
        report["fd0_open"] = False
    if sock is not None:
        report["fileno"] = sock.fileno()
        report["blocking"] = sock.getblocking()
        sock.settimeout(10)
        conn, _ = sock.accept()
        conn.sendall(b"served by fd 0")
        conn.close()
    print(json.dumps(report), flush=True)
    """
)


def child_env(**extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


def run_fd0_child(stdin: int) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", FD0_CHILD],
        stdin=stdin,
        capture_output=True,
        env=child_env(),
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_inherited_fd0_is_the_listening_socket_on_stdin() -> None:
    """mod_fcgid / spawn-fcgi / lighttpd bin-path: the listening socket is fd 0."""
    with listening("127.0.0.1:0") as sock:
        proc = subprocess.Popen(
            [sys.executable, "-c", FD0_CHILD],
            stdin=sock.fileno(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(),
        )
        try:
            with socket.create_connection(sock.getsockname(), timeout=10) as client:
                assert client.recv(100) == b"served by fd 0"
            out, err = proc.communicate(timeout=CHILD_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert report == {"socket": True, "fd0_open": True, "fileno": 0, "blocking": False}


@pytest.mark.parametrize("kind", ["devnull", "pipe", "connected-socket"])
def test_inherited_fd0_is_none_for_anything_else(kind: str) -> None:
    """A shell (``python app.fcgi``), a pipe, or an inetd-style connected socket."""
    if kind == "devnull":
        assert run_fd0_child(subprocess.DEVNULL) == {"socket": False, "fd0_open": True}
        return
    if kind == "pipe":
        read_fd, write_fd = os.pipe()
        try:
            assert run_fd0_child(read_fd) == {"socket": False, "fd0_open": True}
        finally:
            os.close(read_fd)
            os.close(write_fd)
        return
    left, right = socket.socketpair()
    with left, right:
        assert run_fd0_child(left.fileno()) == {"socket": False, "fd0_open": True}


SYSTEMD_CHILD = textwrap.dedent(
    """
    import json, os
    from wsgiwire.adapters._listeners import systemd_listeners
    socks = systemd_listeners()
    report = {
        "pid_matches": os.environ.get("LISTEN_PID") == str(os.getpid()),
        "adopted": [[s.fileno(), list(s.getsockname())[:2]] for s in socks],
        "env_left": sorted(k for k in os.environ if k.startswith("LISTEN_")),
    }
    for fd in (3, 4):
        try:
            os.fstat(fd)
        except OSError:
            report.setdefault("closed", []).append(fd)
    print(json.dumps(report), flush=True)
    """
)


# What systemd does between fork() and exec(): move the sockets to fds 3, 4, ..., set
# LISTEN_FDS and LISTEN_PID (the pid that exec keeps), then exec the service.
SYSTEMD_LAUNCHER = textwrap.dedent(
    """
    import os, sys
    fds = [int(fd) for fd in sys.argv[1].split(",")]
    for index, fd in enumerate(fds):
        os.dup2(fd, 3 + index)
        os.close(fd)
    pid = sys.argv[2]
    os.environ["LISTEN_FDS"] = str(len(fds))
    os.environ["LISTEN_PID"] = str(os.getpid()) if pid == "self" else pid
    os.environ["LISTEN_FDNAMES"] = ":".join("fd%d" % i for i in range(len(fds)))
    os.execv(sys.executable, [sys.executable, "-c", sys.argv[3]])
    """
)


def run_as_systemd(listeners: list[socket.socket], listen_pid: str) -> dict[str, object]:
    """Start a child with the listeners on fds 3, 4, ... and LISTEN_FDS/LISTEN_PID set
    (``listen_pid`` "self": the child's own pid, as systemd sets it)."""
    high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 100) for s in listeners]
    try:
        result = subprocess.run(
            [sys.executable, "-c", SYSTEMD_LAUNCHER, ",".join(map(str, high)), listen_pid,
             SYSTEMD_CHILD],
            pass_fds=high,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=child_env(),
            timeout=CHILD_TIMEOUT,
            check=False,
        )
    finally:
        for fd in high:
            os.close(fd)
    assert result.returncode == 0, result.stderr.decode()
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_systemd_listeners_adopts_fds_from_3() -> None:
    with listening("127.0.0.1:0") as first, listening("[::1]:0") as second:
        report = run_as_systemd([first, second], "self")
        assert report == {
            "pid_matches": False,  # LISTEN_PID was removed: children must not adopt again
            "adopted": [
                [3, list(first.getsockname())],
                [4, list(second.getsockname()[:2])],
            ],
            "env_left": [],
        }


def test_systemd_listeners_ignored_for_another_pid() -> None:
    with listening("127.0.0.1:0") as sock:
        report = run_as_systemd([sock], "1")
        assert report == {
            "pid_matches": False,
            "adopted": [],
            "env_left": ["LISTEN_FDNAMES", "LISTEN_FDS", "LISTEN_PID"],
            "closed": [4],  # fd 3 left alone, fd 4 was never passed
        }


def test_systemd_listeners_without_the_variables() -> None:
    assert systemd_listeners({}) == []
    assert systemd_listeners({"LISTEN_FDS": "1"}) == []
    assert systemd_listeners({"LISTEN_FDS": "1", "LISTEN_PID": "x"}) == []
    assert systemd_listeners({"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid() + 1)}) == []


def test_systemd_listen_fds_not_a_number() -> None:
    with pytest.raises(BindError, match="LISTEN_FDS"):
        systemd_listeners({"LISTEN_FDS": "two", "LISTEN_PID": str(os.getpid())})


# -- PeerFilter ---------------------------------------------------------------------------
V4 = ("127.0.0.1", 40000)
V6 = ("::1", 40000, 0, 0)
MAPPED = ("::ffff:127.0.0.1", 40000, 0, 0)


def test_no_list_allows_everyone() -> None:
    peers = PeerFilter(None)
    assert not peers.active
    for peer in (V4, V6, MAPPED, ("203.0.113.9", 1), "", None):
        assert peers.allows(peer)


@pytest.mark.parametrize(
    ("listed", "peer", "allowed"),
    [
        (["127.0.0.1"], V4, True),
        (["127.0.0.1"], ("127.0.0.2", 1), False),
        (["10.0.0.0/8"], ("10.200.3.4", 1), True),
        (["10.0.0.0/8"], ("11.0.0.1", 1), False),
        (["10.1.2.3/8"], ("10.9.9.9", 1), True),  # host bits allowed (strict=False)
        (["192.0.2.0/24", "127.0.0.1"], V4, True),
        (["::1"], V6, True),
        (["::1"], ("::2", 1, 0, 0), False),
        (["2001:db8::/32"], ("2001:db8:1::5", 1, 0, 0), True),
        (["fe80::/10"], ("fe80::1%lo", 1, 0, 1), True),  # zone id ignored
        # IPv4-mapped IPv6 peers are their IPv4 address, both ways round.
        (["127.0.0.1"], MAPPED, True),
        (["127.0.0.2"], MAPPED, False),
        (["::ffff:127.0.0.1"], V4, True),
        (["::ffff:127.0.0.1"], MAPPED, True),
        (["::ffff:10.0.0.0/104"], ("10.1.1.1", 1), True),
        (["::ffff:10.0.0.0/104"], ("11.1.1.1", 1), False),
        # A v4 entry never admits a v6 peer and vice versa.
        (["127.0.0.1"], V6, False),
        (["::1"], V4, False),
        (["0.0.0.0/0"], V6, False),
        (["::/0"], ("2001:db8::1", 1, 0, 0), True),
        (["127.0.0.1"], ("not-an-address", 1), False),
    ],
)
def test_peer_filter(listed: list[str], peer: tuple[object, ...], allowed: bool) -> None:
    peers = PeerFilter(listed)
    assert peers.active
    assert peers.allows(peer) is allowed


@pytest.mark.parametrize("peer", ["", b"", None, "/run/app.sock"])
def test_unix_peers_pass_an_active_list(peer: object) -> None:
    assert PeerFilter(["192.0.2.1"]).allows(peer)
    assert PeerFilter([]).allows(peer)


@pytest.mark.parametrize("value", ["", " ", ",", " , ,"])
def test_set_but_empty_list_refuses_every_tcp_peer(value: str) -> None:
    peers = PeerFilter.from_environ({"FCGI_WEB_SERVER_ADDRS": value})
    assert peers.active
    for peer in (V4, V6, MAPPED):
        assert not peers.allows(peer)


@pytest.mark.parametrize(
    "value", ["127.0.0.1,localhost", "127.0.0.1;::1", "10.0.0.0/33", "::1/129", "1.2.3"]
)
def test_malformed_entry_fails_closed(value: str) -> None:
    with pytest.raises(BindError, match="malformed"):
        PeerFilter.from_environ({"FCGI_WEB_SERVER_ADDRS": value})
    with pytest.raises(BindError, match="malformed"):
        PeerFilter(value.split(","))


def test_from_environ() -> None:
    assert not PeerFilter.from_environ({}).active
    peers = PeerFilter.from_environ({"FCGI_WEB_SERVER_ADDRS": " 127.0.0.1 , ::1 "})
    assert peers.active
    assert peers.allows(V4)
    assert peers.allows(V6)
    assert peers.allows(MAPPED)
    assert not peers.allows(("192.0.2.1", 1))


def test_from_environ_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FCGI_WEB_SERVER_ADDRS", "192.0.2.7")
    peers = PeerFilter.from_environ()
    assert peers.allows(("192.0.2.7", 1))
    assert not peers.allows(V4)
    monkeypatch.delenv("FCGI_WEB_SERVER_ADDRS")
    assert not PeerFilter.from_environ().active
