"""Where `incibot serve` will listen, and whether Slack and the senders can reach it from there."""

from __future__ import annotations

import errno
import ipaddress
import socket

from bot.config import Settings
from bot.doctor.report import Check, fail, ok, warn


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: whatever it resolves to is reachable as far as we can tell
        return False


def check(settings: Settings) -> Check:
    host, port = settings.host, settings.port
    where = f"http://{host}:{port}"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return warn("listen", f"{where}: the port is taken (a running `incibot serve`?)",
                            "stop what holds it, or set INCIBOT_PORT")  # fmt: skip
            return fail("listen", f"{where}: cannot listen there ({e.strerror or e})",
                        "set INCIBOT_HOST to an address of this machine (0.0.0.0: all of them)")  # fmt: skip
    if loopback(host):
        return warn("listen", f"serve will listen on {where}: only this machine can reach it, not Slack or "
                    "the alert senders",
                    "fine behind a TLS proxy on this machine; otherwise INCIBOT_HOST=0.0.0.0 behind one "
                    "(docs/operations.md#host-port-and-a-tls-proxy), or `serve --socket-mode` for Slack alone")  # fmt: skip
    return ok("listen", f"serve will listen on {where}: Slack needs https://<your host>/slack/events through "
              "a TLS proxy; senders /webhooks/<sender>")  # fmt: skip
