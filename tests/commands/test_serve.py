"""`retrieve.py action=serve`: the real server in a subprocess on a free loopback port, over HTTP:
health, text search equal to RetrievalPipeline's and the CLI's, range requests (206), traversal
refused, uploads (a clip, a corrupt one, one too large, one of no video type), concurrent queries,
the similar-video search, the page, a clean shutdown on Ctrl-C, forged Host and Origin headers
refused, and a gallery naming files that are not videos."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, SMALL_SYNTHETIC, assert_one_block, cli, command_in_process
from vop.commands.retrieve import retrieve
from vop.retrieval.gallery import Gallery
from vop.retrieval.pipeline import RetrievalPipeline

# The tiny random model on the small synthetic test split: every video an mp4 a browser can play.
TINY = ["model=clip_tiny", "method=zeroshot", "data=synthetic", "trainer.device=cpu", "trainer.progress=false",
        *SMALL_SYNTHETIC]
URL_LINE = re.compile(r"at (http://127\.0\.0\.1:\d+/)")


class Server(subprocess.Popen):
    """The server's process; `log` holds what it wrote to stderr so far (read by a thread, so a
    chatty server never blocks on a full pipe)."""

    def start_reading(self) -> None:
        self.log: list[str] = []
        threading.Thread(target=lambda: self.log.extend(iter(self.stderr.readline, "")), daemon=True).start()


def start_server(gallery: Path, data_dir: Path, *extra: str) -> tuple[Server, str]:
    """The server as a user starts it; (process, its URL) once it prints where it listens."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    proc = Server([sys.executable, "retrieve.py", "action=serve", f"gallery={gallery}", "serve.port=0",
                   f"paths.data_dir={data_dir}", *TINY, *extra], cwd=REPO_ROOT, env=env,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.start_reading()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            proc.wait()
            time.sleep(0.5)  # the reader thread takes what the process wrote last
            raise AssertionError(f"the server exited: {''.join(proc.log)[-3000:]}")
        if match := URL_LINE.search(line):
            return proc, match.group(1)
    proc.kill()
    raise AssertionError("the server did not say where it listens")


def stop(proc: Server) -> tuple[int, str]:
    """Ctrl-C; (exit status, what the server printed on stdout). Its stderr is its reader thread's."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, proc.stdout.read()


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("serve")
    path = tmp / "test.safetensors"
    proc = cli("retrieve.py", "action=build", f"gallery={path}", "split=test", f"paths.data_dir={tmp / 'data'}", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return path, tmp / "data"


@pytest.fixture(scope="module")
def server(gallery):
    path, data = gallery
    proc, url = start_server(path, data, "serve.max_upload_mb=1")
    yield url
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def post_video(url: str, name: str, data: bytes) -> tuple[int, dict]:
    boundary = "vopboundary7MA4YWxkTrZu0gW"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def announce_upload(url: str, size: int) -> tuple[int, dict]:
    """A POST whose Content-Length says `size` bytes; only its first bytes are sent. (Sending the whole
    body would race the server's early answer: it may close the connection while the client writes.)"""
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    conn.putrequest("POST", "/api/search")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(size))
    conn.endheaders(b"--x\r\n")
    response = conn.getresponse()
    status, body = response.status, json.loads(response.read())
    conn.close()
    return status, body


def test_health_and_text_search_equal_the_pipeline_and_the_cli(server, gallery, tmp_path):
    path, data = gallery
    status, _, body = get(server + "api/health")
    health = json.loads(body)
    assert status == 200 and health["videos"] == 16 and health["encoder"]["method"] == "zeroshot"
    pipeline = RetrievalPipeline.from_gallery(path)
    query = pipeline.gallery.captions[3]
    status, _, body = get(server + "api/search?" + urllib.parse.urlencode({"q": query, "k": 5}))
    answer = json.loads(body)
    expected = pipeline(query, topk=5)
    assert status == 200 and answer["mode"] == "t2v"
    assert [h["id"] for h in answer["hits"]] == expected.ids
    assert [h["score"] for h in answer["hits"]] == pytest.approx(expected.scores, abs=1e-6)
    owner = pipeline.gallery.video_ids[pipeline.gallery.caption_video[3]]
    assert [h["truth"] for h in answer["hits"]] == [h["id"] == owner for h in answer["hits"]]
    # retrieve.py's query command in this interpreter (its real process: the README's blocks, tests/test_docs.py)
    printed = command_in_process(retrieve, "retrieve", tmp_path, f"gallery={path}", f"query={query}", "topk=5",
                                 f"paths.data_dir={data}", *TINY)
    ids = [line.split()[2] for line in printed.stdout.splitlines() if re.match(r"\s*\d+\. ", line)]
    assert ids == expected.ids
    first = answer["hits"][0]
    assert first["caption"] == pipeline.gallery.first_caption(first["row"]) and first["video_url"] == f"/video/{first['row']}"


def test_videos_stream_with_range_requests_and_nothing_else_is_served(server, gallery):
    pipeline = RetrievalPipeline.from_gallery(gallery[0])
    file = Path(pipeline.gallery.video_paths[2]).read_bytes()
    status, headers, body = get(server + "video/2", {"Range": "bytes=100-199"})
    assert status == 206 and body == file[100:200]
    assert headers["content-range"] == f"bytes 100-199/{len(file)}" and headers["content-type"] == "video/mp4"
    status, _, body = get(server + "video/2")
    assert status == 200 and body == file
    for bad in ["video/16", "video/-1", "video/..%2F..%2F..%2Fetc%2Fpasswd", "video/%2e%2e", "video/2/../../x",
                "static/..%2F..%2Fserver.py", "static/%2e%2e/server.py", "thumb/99.jpg", "video/1e3", "video/%C2%B2",
                "api/similar?row=%C2%B2", "video/99999999999999999999"]:
        status, _, body = get(server + bad)
        assert status == 404 and b"import" not in body and b"root:" not in body, bad
    status, headers, body = get(server + "thumb/0.jpg")
    assert status == 200 and headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"


def test_uploads_search_captions_and_bad_ones_are_4xx(server, gallery):
    pipeline = RetrievalPipeline.from_gallery(gallery[0])
    clip = Path(pipeline.gallery.video_paths[5])
    before = set(Path(tempfile.gettempdir()).glob("vop-upload-*"))
    status, answer = post_video(server + "api/search?k=3", "my clip.mp4", clip.read_bytes())
    expected = pipeline(clip, topk=3)
    assert status == 200 and answer["mode"] == "v2t" and answer["query"] == "my clip.mp4"
    assert [h["id"] for h in answer["hits"]] == expected.ids
    status, answer = post_video(server + "api/search", "broken.mp4", b"\x00\x00\x00\x18ftypmp42 cut off")
    assert status == 400 and "broken.mp4" in answer["error"] and "cannot be decoded" in answer["error"]
    status, answer = post_video(server + "api/search", "notes.txt", b"hello")
    assert status == 400 and "no video suffix" in answer["error"]
    status, answer = announce_upload(server, 2 << 20)  # refused from its Content-Length, before the body
    assert status == 413 and "the limit is 1 MiB (serve.max_upload_mb)" in answer["error"]
    status, _, body = get(server + "api/search?q=")
    assert status == 400 and b"q is empty" in body
    assert set(Path(tempfile.gettempdir()).glob("vop-upload-*")) == before  # every upload's file removed
    status, _, body = get(server + "api/health")
    assert status == 200  # still serving


def test_concurrent_queries_each_get_their_own_answer(server, gallery):
    pipeline = RetrievalPipeline.from_gallery(gallery[0])
    queries = pipeline.gallery.captions[:8]
    expected = {q: pipeline(q, topk=4).ids for q in queries}

    def ask(query: str) -> list[str]:
        _, _, body = get(server + "api/search?" + urllib.parse.urlencode({"q": query, "k": 4}))
        return [h["id"] for h in json.loads(body)["hits"]]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, queries * 3))
    assert answers == [expected[q] for q in queries * 3]


def test_similar_videos_and_the_page(server):
    status, _, body = get(server + "api/similar?row=4&k=3")
    answer = json.loads(body)
    assert status == 200 and answer["row"] == 4 and len(answer["videos"]) == 3
    assert all(v["row"] != 4 for v in answer["videos"])
    assert [h["truth"] for h in answer["hits"]] == [h["video_id"] == answer["query"] for h in answer["hits"]]
    status, _, page = get(server + "?q=a+red+circle")
    assert status == 200 and b"<title>vop search</title>" in page and b"/static/app.js" in page
    status, _, script = get(server + "static/app.js")
    assert status == 200 and b"textContent" in script and b"innerHTML" not in script  # data is never markup


def test_ctrl_c_stops_the_server_cleanly(gallery):
    proc, url = start_server(*gallery)
    assert get(url + "api/health")[0] == 200
    code, out = stop(proc)
    assert code == 0 and "stopped" in out


def test_listening_beyond_this_machine_needs_allow_remote(gallery):
    proc = cli("retrieve.py", "action=serve", f"gallery={gallery[0]}", "serve.host=0.0.0.0", *TINY)
    assert_one_block(proc, "serve.host=0.0.0.0 would let other machines search your videos",
                     "serve.allow_remote=true")


def test_a_video_gone_since_the_build_is_a_404_not_a_500(gallery):
    path, data = gallery
    pipeline = RetrievalPipeline.from_gallery(path)
    gone = Path(pipeline.gallery.video_paths[7])
    moved = gone.with_suffix(".away")
    gone.rename(moved)
    try:
        proc, url = start_server(path, data)
        try:
            assert get(url + "thumb/7.jpg")[0] == 404 and get(url + "video/7")[0] == 404
            assert get(url + "api/health")[0] == 200
        finally:
            stop(proc)
    finally:
        moved.rename(gone)


def test_requests_addressed_to_another_host_or_from_another_site_are_refused(server):
    """DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 sends its own name as
    Host. Every route refuses it before it runs; the server's own names are answered."""
    port = urllib.parse.urlparse(server).port
    for path in ["", "api/health", "api/search?q=a+red+circle", "api/similar?row=1", "video/2", "thumb/2.jpg",
                 "static/app.js", "no/such/route"]:
        status, _, body = get(server + path, {"Host": f"evil.example:{port}"})
        assert status == 421 and "does not answer to the host name 'evil.example:" in json.loads(body)["error"], path
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        assert get(server + "video/2", {"Host": host})[0] == 200
    status, _, body = get(server + "api/health", {"Origin": "http://evil.example"})
    assert status == 403 and "another site" in json.loads(body)["error"]
    assert get(server + "api/health", {"Origin": server.rstrip("/")})[0] == 200  # the page's own requests


@pytest.fixture(scope="module")
def forged_gallery(gallery, tmp_path_factory) -> Path:
    """The test gallery as someone else could hand it over: rows 0-3 name files that are not videos."""
    tmp = tmp_path_factory.mktemp("forged")
    (tmp / "secret.mp4").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (tmp / "notes.txt").write_text("root:x:0:0 a text file\n")
    (tmp / "link.mp4").symlink_to(tmp / "notes.txt")
    from PIL import Image
    Image.new("RGB", (32, 32), (255, 0, 0)).save(tmp / "picture.png")
    (tmp / "picture.png").rename(tmp / "picture.mkv")
    forged = Gallery.load(gallery[0])
    forged.video_paths[:4] = [str(tmp / "secret.mp4"), str(tmp / "notes.txt"), str(tmp / "link.mp4"),
                              str(tmp / "picture.mkv")]
    return forged.save(tmp / "forged.safetensors")


def test_a_gallery_naming_files_that_are_not_videos_gets_none_of_them_served(forged_gallery, gallery):
    proc, url = start_server(forged_gallery, gallery[1])
    try:
        for row, reason in [(0, "does not open as a video container"), (1, "names no video file"),
                            (2, "does not open as a video container"), (3, "png_pipe data, not a video container")]:
            status, _, body = get(url + f"video/{row}")
            assert status == 404 and reason in json.loads(body)["error"] and b"root:" not in body, row
            status, _, body = get(url + f"thumb/{row}.jpg")
            assert status == 404 and b"root:" not in body, row
        assert get(url + "video/4")[0] == 200  # the real videos still play
        status, _, body = get(url + "api/similar?row=0&k=15")
        links = {h["row"]: h["video_url"] for h in json.loads(body)["videos"]}
        assert status == 200 and links[1] is None and links[4] == "/video/4"  # no video suffix: no player
    finally:
        stop(proc)


def test_unknown_routes_wrong_methods_and_huge_queries_answer_json(server):
    status, _, body = get(server + "no/such/page")
    assert status == 404 and "no such page: /no/such/page" in json.loads(body)["error"]
    request = urllib.request.Request(server + "api/health", data=b"x", method="POST")
    try:
        urllib.request.urlopen(request, timeout=60)
        raise AssertionError("POST /api/health was answered")
    except urllib.error.HTTPError as err:
        assert err.code == 405 and "POST is not allowed on /api/health" in json.loads(err.read())["error"]
    status, _, body = get(server + "api/search?q=" + "a" * (1 << 20))  # 1 MB: not uvicorn's plain-text 400
    assert status == 400 and "q is 1048576 characters long" in json.loads(body)["error"]


def test_every_request_is_one_log_line(gallery):
    proc, url = start_server(*gallery)
    try:
        for path in ["api/health", "video/2", "no/such/page", "api/search?q=" + "b" * 5000]:
            get(url + path)
    finally:
        stop(proc)
    time.sleep(0.5)  # the reader thread takes the last lines
    # One line each, in the order their answers ended (a file's may end after the next request's).
    logged = dict(re.search(r"GET (\S+) .*?(\d{3}) [\d.]+ ms$", line.strip()).groups() for line in proc.log
                  if " GET /" in line)
    long = "/api/search?q=" + "b" * 186 + "..."  # a long query is not logged whole
    assert logged == {"/api/health": "200", "/video/2": "200", "/no/such/page": "404", long: "400"}
    assert sum(" GET /" in line for line in proc.log) == 4
    assert "(5014 characters) 400" in next(line for line in proc.log if long in line)


@pytest.fixture(scope="module")
def avi_gallery(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A folder gallery of an AVI holding MPEG-4 Part 2 (what Chromium cannot play) and an mp4."""
    from vop.data.sample_collection import spec
    from vop.data.synthetic import render, write_mp4
    import av

    tmp = tmp_path_factory.mktemp("avi")
    folder = tmp / "clips"
    folder.mkdir()
    with av.open(str(folder / "old camera.avi"), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for image in render(spec(1), 16, 64, 48):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    write_mp4(folder / "phone.mp4", render(spec(2), 12, 64, 48), fps=8)
    gallery = tmp / "clips.safetensors"
    proc = cli("retrieve.py", "action=build", f"videos={folder}", f"gallery={gallery}", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return gallery, tmp / "data", folder / "old camera.avi"


def test_an_avi_is_served_as_an_h264_mp4_made_once(avi_gallery):
    import av

    gallery, data, avi = avi_gallery
    row = Gallery.load(gallery).video_paths.index(str(avi))
    proc, url = start_server(gallery, data)
    try:
        status, headers, body = get(url + f"video/{row}")
        again = get(url + f"video/{row}", {"Range": "bytes=0-99"})
    finally:
        stop(proc)
    assert status == 200 and headers["content-type"] == "video/mp4" and again[0] == 206 and again[2] == body[:100]
    copies = list(Path(f"{gallery}.browser").glob("*.mp4"))
    assert len(copies) == 1 and copies[0].read_bytes() == body  # beside the gallery, made once
    with av.open(str(copies[0])) as copy, av.open(str(avi)) as source:
        assert copy.streams.video[0].codec_context.name == "h264" and source.streams.video[0].codec_context.name == "mpeg4"
        assert sum(1 for _ in copy.decode(video=0)) == sum(1 for _ in source.decode(video=0)) == 16
