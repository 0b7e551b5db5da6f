"""Listening sockets and the peer allow-list, the same for every protocol.

Addresses (``--bind``):

* ``unix:/path/to.sock``: a unix socket, mode 0660 unless asked otherwise
  (never world-writable by default). An existing *socket* at the path is
  replaced; any other file there is an error and is never deleted.
* ``HOST:PORT``, ``[v6addr]:PORT``: TCP over IPv4 or IPv6.
* ``fd:N``: an already-listening socket inherited as file descriptor N.
* fd 0 (no ``--bind``): mod_fcgid, lighttpd ``bin-path``, spawn-fcgi and
  systemd ``StandardInput=socket`` hand over a listening socket on stdin.
* systemd socket activation: ``LISTEN_FDS``/``LISTEN_PID``, fds from 3.

The allow-list (``FCGI_WEB_SERVER_ADDRS`` or ``--allow``) names the IP
addresses that may connect over TCP. IPv4, IPv6 and IPv4-mapped IPv6 peers
are compared as addresses (``::ffff:127.0.0.1`` is ``127.0.0.1``); unix-socket
peers are governed by the socket file's permissions and always pass. A set
but empty or malformed list fails closed.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

# ipaddress is imported where an allow-list is used: most servers have none (a
# unix socket, a loopback port), and every worker would carry the module.
if TYPE_CHECKING:
    import ipaddress

    IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
    IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_SOCKET_MODE",
    "BindError",
    "chown_socket",
    "PeerFilter",
    "inherited_fd0",
    "open_listener",
    "parse_bind",
    "remove_socket_file",
    "systemd_listeners",
]

log = logging.getLogger("wsgiwire")

DEFAULT_BACKLOG = 1024
DEFAULT_SOCKET_MODE = 0o660


class BindError(Exception):
    """A ``--bind`` address that cannot be used (the message says why)."""


@dataclass(frozen=True, slots=True)
class BindSpec:
    kind: str  # "unix", "tcp", "fd"
    path: str = ""
    host: str = ""
    port: int = 0
    fd: int = -1

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd:{self.fd}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_bind(address: str) -> BindSpec:
    """Parse ``unix:/path``, ``HOST:PORT``, ``[v6]:PORT`` or ``fd:N``."""
    if address.startswith("unix:"):
        path = address[5:]
        if not path:
            raise BindError("unix: needs a path, e.g. unix:/run/app.sock")
        return BindSpec("unix", path=path)
    if address.startswith("fd:"):
        if not address[3:].isdigit():
            raise BindError(f"fd: needs a number (a descriptor), not {address[3:]!r}")
        return BindSpec("fd", fd=int(address[3:]))
    if address.startswith("/"):
        return BindSpec("unix", path=address)
    if address.startswith("["):
        host, sep, port_text = address[1:].partition("]:")
        if not sep:
            raise BindError(f"expected [v6address]:PORT, got {address!r}")
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep:
            raise BindError(f"expected HOST:PORT, unix:/path or fd:N, got {address!r}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise BindError(f"bad port {port_text!r} in {address!r}")
    return BindSpec("tcp", host=host or "127.0.0.1", port=int(port_text))


def _tune(sock: socket.socket) -> socket.socket:
    sock.setblocking(False)
    sock.set_inheritable(True)  # prefork workers and re-exec keep it
    return sock


def open_listener(
    spec: BindSpec,
    *,
    backlog: int = DEFAULT_BACKLOG,
    socket_mode: int = DEFAULT_SOCKET_MODE,
    umask: int | None = None,
) -> socket.socket:
    """Create (or adopt) the listening socket ``spec`` names."""
    if spec.kind == "fd":
        return _adopt_fd(spec.fd)
    if spec.kind == "unix":
        return _open_unix(spec.path, backlog, socket_mode, umask)
    try:
        infos = socket.getaddrinfo(
            spec.host, spec.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BindError(f"cannot resolve {spec.host!r}: {exc}") from None
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {spec}: {exc.strerror}") from None
    return _tune(sock)


def _open_unix(path: str, backlog: int, mode: int, umask: int | None) -> socket.socket:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise BindError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # a stale socket left by a previous run
        else:
            raise BindError(f"{path} is in use by another running server")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Create the file with no permissions for others, then set the final mode.
    old = os.umask(0o777 if umask is None else umask)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot bind {path}: {exc.strerror}") from None
    finally:
        os.umask(old)
    if umask is None:
        os.chmod(path, mode)
    sock.listen(backlog)
    return _tune(sock)


def _adopt_fd(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(f"fd {fd} is not a socket: {exc.strerror}") from None
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()
        raise BindError(f"fd {fd} is a socket but not listening")
    return _tune(sock)


def inherited_fd0() -> socket.socket | None:
    """The listening socket on fd 0, if the process was started with one."""
    try:
        sock = socket.socket(fileno=0)
    except OSError:
        return None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        sock.detach()
        return None
    if not listening:
        sock.detach()
        return None
    return _tune(sock)


def systemd_listeners(environ: Mapping[str, str] | None = None) -> list[socket.socket]:
    """Sockets passed by systemd socket activation (LISTEN_FDS for this LISTEN_PID)."""
    env = os.environ if environ is None else environ
    count = env.get("LISTEN_FDS")
    pid = env.get("LISTEN_PID")
    if not count or not pid or not pid.isdigit() or int(pid) != os.getpid():
        return []
    if not count.isdigit():
        raise BindError(f"LISTEN_FDS is not a number: {count!r}")
    socks = [_adopt_fd(3 + i) for i in range(int(count))]
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)  # children must not adopt them again
    return socks


class PeerFilter:
    """Which TCP peers may connect; ``None`` addresses means everyone.

    Built from ``FCGI_WEB_SERVER_ADDRS`` (comma separated, as in the FastCGI
    spec) or explicit addresses. Networks in CIDR form are accepted too.
    """

    __slots__ = ("_networks",)

    def __init__(self, addresses: Iterable[str] | None) -> None:
        if addresses is None:
            self._networks: list[IPNetwork] | None = None
            return
        import ipaddress

        networks = []
        for text in addresses:
            item = text.strip()
            if not item:
                continue
            try:
                net = ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise BindError(f"malformed address in the allow-list: {item!r}") from None
            networks.append(_unmap_network(net))
        if not networks:
            log.warning("the peer allow-list is empty: every TCP connection will be refused")
        self._networks = networks

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> PeerFilter:
        env = os.environ if environ is None else environ
        value = env.get("FCGI_WEB_SERVER_ADDRS")
        if value is None:
            return cls(None)
        return cls(value.split(","))

    @property
    def active(self) -> bool:
        return self._networks is not None

    def allows(self, peer: object) -> bool:
        """``peer`` is what ``accept()`` returned as the address."""
        networks = self._networks
        if networks is None:
            return True
        if not isinstance(peer, tuple):
            return True  # unix socket: the file mode decides who connects
        import ipaddress

        try:
            addr = _unmap(ipaddress.ip_address(str(peer[0]).split("%", 1)[0]))
        except ValueError:
            return False
        return any(addr.version == net.version and addr in net for net in networks)


def _unmap(addr: IPAddress) -> IPAddress:
    import ipaddress

    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _unmap_network(net: IPNetwork) -> IPNetwork:
    import ipaddress

    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network(f"{mapped}/{net.prefixlen - 96}")
    return net


def chown_socket(path: str, owner: str) -> None:
    """``--socket-owner USER[:GROUP]`` (names or numbers) for a unix socket we created."""
    import grp
    import pwd

    user, _, group = owner.partition(":")
    try:
        uid = -1 if not user else int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
        gid = -1 if not group else int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        os.chown(path, uid, gid)
    except (KeyError, OSError) as exc:
        raise BindError(f"cannot give {path} to {owner!r}: {exc}") from None


def remove_socket_file(path: str) -> None:
    """Unlink ``path`` if it is (still) a socket; anything else there is left alone."""
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)


def close_quietly(sock: _socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


_IGNORED_ACCEPT_ERRORS = frozenset(
    {errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED, errno.EPROTO, errno.EINTR}
)
