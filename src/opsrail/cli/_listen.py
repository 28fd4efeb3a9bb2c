"""Before ``opsrail up`` migrates and starts anything: can it listen where it was asked to?"""

from __future__ import annotations

import errno
import socket

from opsrail.model import InvalidInput, Unavailable


def check_listen_address(host: str, port: int) -> None:
    """Raise a clear error when ``host`` is not an address of this machine or ``port`` is taken.

    The server would otherwise migrate the database, start, log the bind error as JSON and exit (or, for some
    addresses, keep waiting); this says it in one line first. The probe socket is closed at once.
    """
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInput(
            f"cannot listen on {host!r}: {getattr(exc, 'strerror', None) or exc}",
            hint="give an address or name of this machine, e.g. --host 127.0.0.1 (this machine only) or 0.0.0.0",
        ) from None
    family, kind, protocol, _, address = found[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server sets it
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Unavailable(
                    f"port {port} on {host} is already in use",
                    hint="stop the process that holds it (`ss -ltnp` names it), or choose another with --port",
                ) from None
            raise InvalidInput(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                hint="give an address of this machine (--host) and a port you may open (--port, above 1023 "
                "unless running as root)",
            ) from None
