"""`retrieve.py action=serve`: search a gallery from a browser, and over a JSON API.

A Starlette app served by uvicorn (Starlette: the ASGI toolkit FastAPI is built on, without its
pydantic layer, which three routes do not need; uvicorn: the reference ASGI server). The encoder and
the gallery load once; every query then runs in-process, one at a time behind a lock (the encoder's
model, tokenizer and decoder are not meant for concurrent calls, and two CPU queries at once are
not faster than one after the other), in a worker thread so the server keeps answering.

Routes: `/` (the page, `/?q=<text>` searches on load), `/static/*` (its HTML/CSS/JS, shipped in the
package: no CDN), `/api/health`, `GET /api/search?q=<text>&k=<n>`, `POST /api/search` (a video file in
the multipart field `video`), `GET /api/similar?row=<video row>&k=<n>` (that video's captions and
nearest videos), `/video/<row>` (the file, with HTTP range requests) and `/thumb/<row>.jpg`. Videos
are named by gallery row, never by a path from the request.
"""
from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import av
import torch
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from vop.data.decoders.base import VideoDecodeError
from vop.data.video_files import VIDEO_SUFFIXES, is_video_file
from vop.errors import ConfigError, UserError
from vop.retrieval.browser_video import BrowserCopies
from vop.retrieval.host_check import HostCheck, is_loopback, server_names
from vop.retrieval.html import thumbnails
from vop.retrieval.moments import caption_truth
from vop.retrieval.pipeline import RetrievalPipeline, RetrievalResult
from vop.retrieval.request_log import RequestLog
from vop.result_count import MAX_TOPK, topk_problem
from vop.retrieval.served_videos import NotServed, ServedVideos

log = logging.getLogger(__name__)

WEB = Path(__file__).parent / "web"
MAX_QUERY_CHARS = 2000  # CLIP reads 77 tokens of a caption; a longer text is a mistake, not a query
MAX_REQUEST_LINE = 4 << 20  # uvicorn (h11) answers a longer request line itself, in plain text


class SearchService:
    """The pipeline behind a lock, and the JSON a search answers."""

    def __init__(self, pipeline: RetrievalPipeline, thumb_frames: int = 4):
        self.pipeline, self.gallery, self.thumb_frames = pipeline, pipeline.gallery, thumb_frames
        self.lock = threading.Lock()
        self.thumb = lru_cache(maxsize=1024)(self._thumb)
        self.videos = ServedVideos()  # a row's file is sent only if it is a video (a gallery is someone's data)
        # AVI, MPEG-4 Part 2 ...: transcoded once into H.264 for the page's player
        self.copies = BrowserCopies(browser_cache(self.gallery.source))
        # A gallery caption given as the query marks its videos as the ground truth: looked up, not scanned
        # (a moment gallery: the moments of its video that overlap its span, vop/retrieval/moments.py).
        self.videos_of_caption: dict[str, set[int]] = {}
        for c, text in enumerate(self.gallery.captions):
            self.videos_of_caption.setdefault(text, set()).update(caption_truth(self.gallery, c))

    def health(self) -> dict:
        g = self.gallery
        return {"status": "ok", "videos": len(g.video_ids), "captions": len(g.captions), "moments": g.spans is not None,
                "encoder": self.pipeline.encoder.identity, "topk": self.pipeline.topk, "max_topk": MAX_TOPK}

    def video_hit(self, rank: int, row: int, score: float, truth: set[int]) -> dict:
        g = self.gallery
        playable = 0 <= row < len(g.video_paths) and is_video_file(g.video_paths[row])
        # start/end: a moment gallery's row is [start, end] seconds of its video; null for whole videos
        start, end = g.spans[row].tolist() if g.spans is not None and 0 <= row < len(g.spans) else (None, None)
        return {"rank": rank, "id": g.video_ids[row], "score": score, "row": row, "caption": g.first_caption(row),
                "start": start, "end": end, "video_url": f"/video/{row}" if playable else None,
                "thumb_url": f"/thumb/{row}.jpg" if playable else None, "truth": row in truth}

    def caption_hit(self, rank: int, row: int, score: float, truth_video: int | None) -> dict:
        g = self.gallery
        owner = g.caption_video[row]
        hit = self.video_hit(rank, owner, score, set()) if owner >= 0 else {"rank": rank, "row": None,
                                                                           "video_url": None, "thumb_url": None}
        return {**hit, "id": g.captions[row], "caption": g.captions[row], "score": score,
                "video_id": g.video_ids[owner] if owner >= 0 else None, "truth": truth_video is not None and
                owner == truth_video}

    def answer(self, result: RetrievalResult) -> dict:
        if result.mode == "t2v":
            truth = self.videos_of_caption.get(result.query, set())
            hits = [self.video_hit(i + 1, row, score, truth) for i, (row, score) in
                    enumerate(zip(result.rows, result.scores))]
        else:
            hits = [self.caption_hit(i + 1, row, score, None) for i, (row, score) in
                    enumerate(zip(result.rows, result.scores))]
        return {"mode": result.mode, "query": result.query, "hits": hits}

    def search(self, query: str | Path, k: int) -> dict:
        with self.lock:
            result = self.pipeline(query, topk=k)
        return self.answer(result)

    def similar(self, row: int, k: int) -> dict:
        """Video `row` as the query: its captions (v2t) and its nearest other videos (v2v)."""
        g = self.gallery
        emb = g.video_emb[row:row + 1]
        with self.lock:
            videos = self.pipeline.video_index.search(emb, min(k + 1, len(g.video_ids)))
            texts = self.pipeline.text_index.search(emb, k) if self.pipeline.text_index is not None else None
        scores, rows = (t[0].tolist() for t in videos)
        others = [(r, s) for r, s in zip(rows, scores) if r != row][:k]
        out = {"mode": "v2t", "query": g.video_ids[row], "row": row,
               "videos": [self.video_hit(i + 1, r, s, set()) for i, (r, s) in enumerate(others)], "hits": []}
        if texts is not None:
            out["hits"] = [self.caption_hit(i + 1, r, s, row) for i, (s, r) in
                           enumerate(zip(texts[0][0].tolist(), texts[1][0].tolist()))]
        return out

    def _thumb(self, row: int) -> bytes:
        self.videos.check(self.gallery.video_paths[row])  # only a video file is opened for a thumbnail
        with self.lock:
            span = tuple(self.gallery.spans[row].tolist()) if self.gallery.spans is not None else None
            frames = thumbnails(self.pipeline.encoder.decoder, self.gallery.video_paths[row], self.thumb_frames,
                                span=span)
        strip = Image.new("RGB", (sum(f.width for f in frames), max(f.height for f in frames)))
        x = 0
        for frame in frames:
            strip.paste(frame.convert("RGB"), (x, 0))
            x += frame.width
        buffer = io.BytesIO()
        strip.save(buffer, format="JPEG", quality=85)
        return buffer.getvalue()


def whole_number(raw: str) -> int | None:
    """`raw` as a non-negative int, or None (ASCII digits only: `int("²")` would raise)."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 12 else None


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def topk(request: Request, default: int) -> int:
    raw = request.query_params.get("k", str(default))
    k = whole_number(raw)
    problem = topk_problem(k)
    if problem:
        raise ValueError(f"k={raw[:20]!r} {problem}")
    return k


def make_app(service: SearchService, names: frozenset[str] = frozenset(), max_upload_bytes: int = 200 << 20,
             upload_timeout_s: float = 120.0) -> Starlette:
    """The app, answering only requests addressed to loopback names or `names` (host_check.py)."""
    gallery = service.gallery

    def video_row(request: Request) -> int | None:
        row = whole_number(request.path_params["row"])
        return row if row is not None and row < len(gallery.video_ids) else None

    async def page(request: Request) -> Response:
        return FileResponse(WEB / "index.html", media_type="text/html")

    async def health(request: Request) -> Response:
        return JSONResponse(service.health())

    async def search_text(request: Request) -> Response:
        text = request.query_params.get("q", "")
        try:
            k = topk(request, service.pipeline.topk)
            if not text.strip():
                raise ValueError("q is empty: give a text, e.g. /api/search?q=a+red+circle+moves+left")
            if len(text) > MAX_QUERY_CHARS:
                raise ValueError(f"q is {len(text)} characters long; a query may have at most {MAX_QUERY_CHARS} "
                                 "(CLIP reads the first 77 tokens)")
            return JSONResponse(await run_in_threadpool(service.search, text, k))
        except (ValueError, UserError) as err:
            return error(400, str(err))

    async def search_video(request: Request) -> Response:
        length = whole_number(request.headers.get("content-length", ""))
        if length is not None and length > max_upload_bytes:
            return error(413, f"the upload is {length >> 20} MiB; the limit is {max_upload_bytes >> 20} MiB "
                              "(serve.max_upload_mb)")
        try:
            k = topk(request, service.pipeline.topk)
            form = await request.form(max_files=1, max_fields=4, max_part_size=max_upload_bytes)
        except ValueError as err:
            return error(400, str(err))
        except Exception as err:  # noqa: BLE001 - python-multipart's errors: a malformed or too large body
            return error(400, f"the upload could not be read as multipart form data with a `video` file ({err})")
        try:
            return await search_upload(form.get("video"), k)
        finally:
            await form.close()  # every path: the form's own spooled copy goes too

    async def search_upload(upload, k: int) -> Response:
        if upload is None or not hasattr(upload, "read"):
            return error(400, "POST a video file in the multipart field `video`")
        suffix = Path(upload.filename or "").suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            return error(400, f"the upload {upload.filename!r} has no video suffix ({', '.join(VIDEO_SUFFIXES)})")
        fd, name = tempfile.mkstemp(prefix="vop-upload-", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as out:
                size = 0
                while chunk := await upload.read(1 << 20):
                    size += len(chunk)
                    if size > max_upload_bytes:
                        return error(413, f"the upload is over the limit of {max_upload_bytes >> 20} MiB "
                                          "(serve.max_upload_mb)")
                    out.write(chunk)
            answer = await asyncio.wait_for(run_in_threadpool(service.search, Path(name), k), upload_timeout_s)
            answer["query"] = upload.filename
            return JSONResponse(answer)
        except asyncio.TimeoutError:
            return error(408, f"the upload took over {upload_timeout_s:g} s to search (serve.upload_timeout_s)")
        except UserError as err:  # a corrupt or empty video: its message, with the temporary name replaced
            shown = upload.filename or "the upload"
            return error(400, str(err).replace(name, shown).replace(Path(name).stem, shown))
        finally:
            Path(name).unlink(missing_ok=True)

    async def similar(request: Request) -> Response:
        raw = request.query_params.get("row", "")
        try:
            k = topk(request, service.pipeline.topk)
        except ValueError as err:
            return error(400, str(err))
        row = whole_number(raw)
        if row is None or row >= len(gallery.video_ids):
            return error(404, f"row={raw[:20]!r}: the gallery's videos are rows 0 to {len(gallery.video_ids) - 1}")
        return JSONResponse(await run_in_threadpool(service.similar, row, k))

    async def video(request: Request) -> Response:
        row = video_row(request)
        if row is None:
            return error(404, "no such video in this gallery")
        try:
            served = await run_in_threadpool(service.videos.check, gallery.video_paths[row])
            playable = await run_in_threadpool(service.copies.playable, served.path, served.codec)
        except NotServed as err:
            return error(404, f"video {row}: {err}")
        except (av.FFmpegError, OSError) as err:  # a file that opened but does not decode to the end
            return error(404, f"video {row} could not be made playable in a browser ({type(err).__name__}: {err})")
        if playable == served.path:
            return FileResponse(served.path, media_type=served.media_type)
        return FileResponse(playable, media_type="video/mp4")

    async def thumb(request: Request) -> Response:
        row = video_row(request)
        if row is None:
            return error(404, "no such video in this gallery")
        try:
            data = await run_in_threadpool(service.thumb, row)
        except (NotServed, UserError, VideoDecodeError, OSError) as err:  # not a video, or changed since the build
            return error(404, f"no thumbnail: {getattr(err, 'reason', err)}")
        return Response(data, media_type="image/jpeg", headers={"cache-control": "max-age=3600"})

    async def favicon(request: Request) -> Response:
        return RedirectResponse("/static/favicon.svg")

    routes = [Route("/", page), Route("/favicon.ico", favicon), Route("/api/health", health),
              Route("/api/search", search_text, methods=["GET"]), Route("/api/search", search_video, methods=["POST"]),
              Route("/api/similar", similar), Route("/video/{row}", video), Route("/thumb/{row}.jpg", thumb),
              Mount("/static", StaticFiles(directory=WEB), name="static")]
    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, f"no such page: {request.url.path[:100]} (the API: /api/health, /api/search, /api/similar)")

    async def wrong_method(request: Request, exc: Exception) -> Response:
        return error(405, f"{request.method} is not allowed on {request.url.path[:100]}")

    return Starlette(routes=routes, middleware=[Middleware(RequestLog), Middleware(HostCheck, names=names)],
                     exception_handlers={404: not_found, 405: wrong_method})


def check_host(host: str, allow_remote: bool) -> None:
    if not is_loopback(host) and not allow_remote:
        raise ConfigError(f"serve.host={host} would let other machines search your videos and stream them: "
                          "add serve.allow_remote=true to mean it (default: 127.0.0.1, this machine only)")


def browser_cache(gallery: str) -> Path:
    """Where browser copies of a gallery's videos go: `<gallery>.browser/` beside the gallery file, or
    a folder under the system's temporary folder where that cannot be written."""
    if gallery and os.access(Path(gallery).parent, os.W_OK):
        return Path(f"{gallery}.browser")  # made when a first video needs a copy
    return Path(tempfile.gettempdir()) / "vop-browser-videos"


def bound_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), so the URL printed is the one served."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ConfigError(f"serve.host={host} serve.port={port}: cannot listen there ({err.strerror or err}); "
                          "choose another serve.port (0: any free one)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(pipeline: RetrievalPipeline, host: str = "127.0.0.1", port: int = 8000, allow_remote: bool = False,
          allowed_hosts: Sequence[str] = (), max_upload_mb: int = 200, upload_timeout_s: float = 120.0,
          thumb_frames: int = 4) -> None:
    """Serve until Ctrl-C (or SIGTERM); then shut down cleanly."""
    check_host(host, allow_remote)
    torch.set_grad_enabled(False)
    names = server_names(host, allowed_hosts)
    app = make_app(SearchService(pipeline, thumb_frames), names, max_upload_mb << 20, upload_timeout_s)
    sock = bound_socket(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    if not is_loopback(host):
        log.warning("serving on %s: other machines can reach it (serve.allow_remote=true); it answers requests "
                    "addressed to %s", host, ", ".join(sorted({"localhost", *names})))
    g = pipeline.gallery
    print(f"serving {g.source or 'the gallery'} ({len(g.video_ids)} videos, {len(g.captions)} captions) at {url}"
          " - open it in a browser; Ctrl-C stops", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", http="h11",
                            h11_max_incomplete_event_size=MAX_REQUEST_LINE)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then hands Ctrl-C back: done, not a failure
        pass
    finally:
        sock.close()
    print("stopped", flush=True)
