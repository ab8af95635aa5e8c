"""The search server answers only requests addressed to it by one of its own names.

A server on 127.0.0.1 is still reachable from any web page the user opens, through DNS rebinding:
a site's name is made to resolve to 127.0.0.1, and the browser then sends that page's requests to
this server with the site's name in the `Host` header. A request whose `Host` is not one of the
server's names (loopback names, `serve.host`, `serve.allowed_hosts`) is therefore refused (421),
and so is one a browser sends from a page of another origin (403: its `Origin` header names a
page that is not this server's, e.g. a form on another site posting to the API), before any route
runs. Starlette's TrustedHostMiddleware is not used: it splits `[::1]:8000` at the first
colon and answers in plain text, where this API answers JSON.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("localhost",)
WILDCARDS = ("0.0.0.0", "::")  # listening on every address: the names the server is reached by are the user's to list


def host_name(header: str) -> str:
    """The host of a `Host` header or an origin's netloc, lower case, without port or trailing dot:
    `LocalHost.:8000` -> `localhost`, `[::1]:8000` -> `::1`. An unparsable one is ''."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else ""
    return header.rsplit(":", 1)[0].rstrip(".") if header.count(":") <= 1 else ""


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_names(host: str, allowed_hosts: Iterable[str] = ()) -> frozenset[str]:
    """The names a server listening on `host` answers to besides loopback ones: `host` itself (unless
    it is a wildcard address) and `allowed_hosts`."""
    names = {host_name(h) or h.lower() for h in allowed_hosts}
    if host not in WILDCARDS:
        names.add(host_name(f"[{host}]" if ":" in host else host))
    return frozenset(names)


class HostCheck:
    """ASGI middleware: 421 for a `Host` that is not the server's, 403 for a request from another origin."""

    def __init__(self, app: ASGIApp, names: frozenset[str]):
        self.app, self.names = app, names

    def allowed(self, host: str) -> bool:
        return bool(host) and (host in self.names or is_loopback(host))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = host_name(headers.get("host", ""))
        origin = headers.get("origin")
        if not self.allowed(host):
            shown = headers.get("host", "")[:100]
            response = JSONResponse({"error": f"this server does not answer to the host name {shown!r}: it answers "
                                              "to localhost, its loopback addresses and serve.host; add a name to "
                                              "serve.allowed_hosts to serve it there"}, status_code=421)
        elif origin is not None and urlsplit(origin).netloc.lower() != headers["host"].strip().lower():
            response = JSONResponse({"error": f"requests from pages of another site ({origin[:100]!r}) are "
                                              "refused"}, status_code=403)
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)
