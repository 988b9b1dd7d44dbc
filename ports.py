"""Is the app's port free? Checked before Gradio loads, by the CLI's ``app`` command and by
``python -m wan2gp_structure_video.ui.standalone`` alike, so both say the same one line (standard
library only)."""
from __future__ import annotations

import errno
import socket

from .errors import OptionError


def _port_free(host: str, port: int) -> bool:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OptionError(f"--host {host}: not an address of this machine ({exc.strerror}).") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise OptionError(f"--host {host}: cannot listen there ({exc.strerror}).") from None
    return True


def check_port(host: str, port: int) -> None:
    """One line naming a free port when ``port`` is taken (checked before Gradio loads)."""
    if not 1 <= port <= 65535:
        raise OptionError(f"--port {port}: give a port from 1 to 65535.")
    if _port_free(host, port):
        return
    free = next((p for p in range(port + 1, min(port + 100, 65536)) if _port_free(host, p)), None)
    hint = f"pass --port {free}" if free is not None else "pass --port N with a free port"
    raise OptionError(f"port {port} is in use (another app is listening there): {hint}.")
