"""Who this node is and where the others reach it: its id (from its data
directory, else the hostname) and its advertised address."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
from pathlib import Path


def stored_node_id(data_dir: str | os.PathLike[str]) -> str | None:
    """The node id recorded in an existing data directory, if any."""
    try:
        meta = json.loads((Path(data_dir) / "meta.json").read_bytes())
    except (OSError, ValueError):
        return None
    node_id = meta.get("node_id") if isinstance(meta, dict) else None
    return node_id if isinstance(node_id, str) and node_id else None


def host_name() -> str:
    """The container's hostname: ``$HOSTNAME``, else the kernel's."""
    return os.environ.get("HOSTNAME") or socket.gethostname()


def advertise_host(listen_host: str) -> str:
    """The address the others reach this node at: the ``--listen`` host when
    it is a specific address; else the address the hostname resolves to
    (a container's own IP, from its /etc/hosts); else the address of the
    interface that routes outwards."""
    if listen_host not in ("", "0.0.0.0", "::", "*"):
        return listen_host
    with contextlib.suppress(OSError):
        address = socket.gethostbyname(socket.gethostname())
        if not ipaddress.ip_address(address).is_loopback:
            return address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe_socket:
        try:
            probe_socket.connect(("10.255.255.255", 9))  # no packet is sent
            address = probe_socket.getsockname()[0]
        except OSError:
            address = "127.0.0.1"
    return str(address)


def endpoint_url(host: str, port: int, scheme: str = "http") -> str:
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            return f"{scheme}://[{host}]:{port}"
    return f"{scheme}://{host.rstrip('.')}:{port}"
