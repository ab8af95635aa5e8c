"""One log line per request the search server answers: method, path, status and milliseconds.

uvicorn's own access log is off (it names the client, not how long an answer took); this ASGI
middleware times each request from its arrival to the end of its answer's body."""
from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("vop.retrieval.server")
MAX_SHOWN = 200  # characters of a path and query shown: a 1 MB query is not logged whole


class RequestLog:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope["path"] + (f"?{query}" if query else "")
            shown = target if len(target) <= MAX_SHOWN else f"{target[:MAX_SHOWN]}... ({len(target)} characters)"
            log.info("%s %s %d %.1f ms", scope["method"], shown, status[0], 1000 * (time.perf_counter() - start))
