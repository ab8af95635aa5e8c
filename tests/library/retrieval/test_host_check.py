"""The search server's Host and Origin check (vop/retrieval/host_check.py), on the ASGI middleware
itself: what a DNS-rebinding page or a form on another site would send, and what the page sends."""
from __future__ import annotations

import asyncio
import json

import pytest

from vop.retrieval.host_check import HostCheck, host_name, server_names


@pytest.mark.parametrize("header, name", [
    ("localhost:8000", "localhost"), ("LocalHost.:8000", "localhost"), ("127.0.0.1", "127.0.0.1"),
    ("[::1]:8000", "::1"), ("[::1]", "::1"), ("evil.example:8000", "evil.example"), ("", ""), ("[::1", ""),
    ("a:b:c", ""),
])
def test_host_name_takes_the_name_without_port(header, name):
    assert host_name(header) == name


def call(app, headers: dict[str, str]) -> tuple[int, dict | None]:
    """One GET through `app`; (status, JSON body or None when the inner app answered)."""
    sent, reached = [], []

    async def inner(scope, receive, send):
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/api/health", "raw_path": b"/api/health", "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(HostCheck(inner, names=app)(scope, receive, send))
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return status, (None if reached else json.loads(body))


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "127.0.0.2:9", "LOCALHOST"])
def test_loopback_names_are_answered(host):
    assert call(server_names("127.0.0.1"), {"host": host}) == (200, None)


@pytest.mark.parametrize("host", ["evil.example:8000", "evil.example", "localhost.evil.example:8000", "10.0.0.5:8000",
                                  "", "0.0.0.0:8000"])
def test_other_names_are_refused_with_a_json_421(host):
    status, body = call(server_names("127.0.0.1"), {"host": host} if host else {})
    assert status == 421 and "serve.allowed_hosts" in body["error"]


def test_the_configured_host_and_the_allow_list_are_answered():
    names = server_names("10.0.0.5", ["My-Box.lan"])
    assert call(names, {"host": "10.0.0.5:8000"})[0] == 200 and call(names, {"host": "my-box.lan:8000"})[0] == 200
    assert call(names, {"host": "other.lan:8000"})[0] == 421
    # listening on every address names no host: the user lists the names machines use
    assert server_names("0.0.0.0") == frozenset() and call(server_names("0.0.0.0"), {"host": "0.0.0.0"})[0] == 421


@pytest.mark.parametrize("origin, status", [
    ("http://127.0.0.1:8000", 200),   # the page itself
    ("http://evil.example", 403),     # a form on another site posting to the API
    ("http://127.0.0.1:3000", 403),   # another local server's page
    ("null", 403),                    # a sandboxed frame or a file
])
def test_requests_from_other_origins_are_refused(origin, status):
    got, body = call(server_names("127.0.0.1"), {"host": "127.0.0.1:8000", "origin": origin})
    assert got == status and (body is None or "another site" in body["error"])
