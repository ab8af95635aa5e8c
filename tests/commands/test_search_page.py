"""The search page in a real browser: Debian's chromium, headless, driven by selenium through
/usr/bin/chromedriver (nothing downloaded). Type a query, see the result cards, the first video
reaches a playable state, upload a clip, see its captions; an AVI result plays. Skipped, saying why, where chromium or
its driver is not installed (`.ci/run` installs them). VOP_SCREENSHOT=<file.png> keeps a screenshot
of the results (docs/images/search_page.png was taken so)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.commands.test_serve import avi_gallery, gallery, start_server, stop  # noqa: F401 (the fixtures)
from vop.retrieval.gallery import Gallery
from vop.retrieval.pipeline import RetrievalPipeline

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
                                reason=f"no {CHROMIUM} and {DRIVER} (apt-get install chromium chromium-driver)")
WAIT_S = 60
TOPK = 7  # the server's topk: the page's k until the user changes it


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)  # the system driver: no download
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(gallery):  # noqa: F811 (the gallery fixture of test_serve)
    proc, url = start_server(*gallery, f"topk={TOPK}")
    yield url
    stop(proc)


def test_type_a_query_watch_a_video_and_drop_in_a_clip(browser, page, gallery):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    pipeline = RetrievalPipeline.from_gallery(gallery[0])
    query = pipeline.gallery.captions[0]
    wait = WebDriverWait(browser, WAIT_S)
    browser.get(page)
    wait.until(lambda b: "videos" in b.find_element(By.ID, "gallery").text)  # /api/health answered
    k = browser.find_element(By.ID, "k")
    assert (k.get_attribute("value"), k.get_attribute("max")) == (str(TOPK), "100")  # the server's k and limit
    box = browser.find_element(By.ID, "q")
    box.clear()
    box.send_keys(query, Keys.ENTER)
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#results .card")) == TOPK)
    cards = browser.find_elements(By.CSS_SELECTOR, "#results .card")
    expected = pipeline(query, topk=TOPK).ids
    assert [c.find_element(By.CLASS_NAME, "id").text.split(". ", 1)[1] for c in cards] == expected
    assert browser.current_url.endswith(f"k={TOPK}") and "q=" in browser.current_url  # the search can be linked
    video = cards[0].find_element(By.TAG_NAME, "video")
    wait.until(lambda b: b.execute_script("return arguments[0].readyState", video) >= 2)  # a frame to show
    browser.execute_script("arguments[0].play()", video)
    wait.until(lambda b: b.execute_script("return arguments[0].currentTime", video) > 0)  # it plays
    wait.until(lambda b: all(b.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
                             for img in b.find_elements(By.CSS_SELECTOR, "#results .card img.strip")))
    if os.environ.get("VOP_SCREENSHOT"):
        browser.save_screenshot(os.environ["VOP_SCREENSHOT"])
    clip = Path(pipeline.gallery.video_paths[1])
    browser.find_element(By.ID, "upload").send_keys(str(clip))
    wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#results h2"), f"captions for {clip.name}"))
    captions = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#results ol.captions li")]
    assert len(captions) == TOPK and captions[0].startswith(pipeline(clip, topk=TOPK).ids[0])


def test_the_page_shows_a_servers_error_as_text(browser, page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page + "?q=" + "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E&k=500")  # k out of range, markup in q
    WebDriverWait(browser, WAIT_S).until(lambda b: "k='500' must be a whole number" in b.find_element(By.ID, "status").text)
    assert not browser.find_elements(By.CSS_SELECTOR, "#results img")  # the query's markup stayed text


def test_an_avi_result_plays_in_the_browser(browser, avi_gallery):  # noqa: F811 (test_serve's fixture)
    """MPEG-4 Part 2 in AVI: Chromium cannot play the file itself, so the page gets an H.264 copy."""
    from selenium.webdriver.support.ui import WebDriverWait

    gallery, data, avi = avi_gallery
    row = Gallery.load(gallery).video_paths.index(str(avi))
    proc, url = start_server(gallery, data)
    try:
        browser.get(url + f"video/{row}")  # the URL a result card's player loads
        wait = WebDriverWait(browser, WAIT_S)
        video = wait.until(lambda b: b.execute_script("return document.querySelector('video')"))
        wait.until(lambda b: b.execute_script("return arguments[0].readyState >= 2 || arguments[0].error", video))
        assert browser.execute_script("return arguments[0].error", video) is None
        browser.execute_script("arguments[0].muted = true; arguments[0].play()", video)
        wait.until(lambda b: b.execute_script("return arguments[0].currentTime", video) > 0)  # it plays
        assert browser.execute_script("return arguments[0].videoWidth", video) == 64
    finally:
        stop(proc)


def test_a_moment_plays_from_its_start_and_stops_at_its_end(browser, tmp_path):
    """A moment gallery's card shows the moment's span; its player starts at the moment, not at 0:00, and
    stops at the moment's end (the media fragment #t=start,end)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.helpers import cli
    from tests.library.retrieval.test_moments import LONG, MOMENTS

    path = tmp_path / "long.safetensors"
    proc = cli("retrieve.py", "action=build", f"gallery={path}", f"paths.data_dir={tmp_path / 'data'}",
               "trainer.progress=false", *LONG, *MOMENTS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pipeline = RetrievalPipeline.from_gallery(path)
    query = pipeline.gallery.captions[4]
    top = pipeline(query, topk=1)
    start, end = (float(v) for v in pipeline.gallery.spans[top.rows[0]].tolist())
    assert start > 0  # a moment after the video's first: the player must seek
    server, url = start_server(path, tmp_path / "data")
    try:
        wait = WebDriverWait(browser, WAIT_S)
        browser.get(url)
        wait.until(lambda b: "moments" in b.find_element(By.ID, "gallery").text)
        box = browser.find_element(By.ID, "q")
        box.clear()
        box.send_keys(query, Keys.ENTER)
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#results .card .span"))
        first = browser.find_elements(By.CSS_SELECTOR, "#results .card")[0]
        assert first.find_element(By.CLASS_NAME, "span").text == f"0:{start:04.1f} - 0:{end:04.1f}"
        video = first.find_element(By.TAG_NAME, "video")
        wait.until(lambda b: b.execute_script("return arguments[0].readyState", video) >= 1)
        assert browser.execute_script("return arguments[0].currentTime", video) == pytest.approx(start, abs=0.15)
        browser.execute_script("arguments[0].muted = true; arguments[0].play()", video)
        wait.until(lambda b: b.execute_script("return arguments[0].paused && arguments[0].currentTime > 0", video))
        assert browser.execute_script("return arguments[0].currentTime", video) == pytest.approx(end, abs=0.25)
    finally:
        stop(server)
