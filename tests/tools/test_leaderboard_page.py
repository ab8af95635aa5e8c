"""The leaderboard page make_table writes, in a real browser: Debian's chromium, headless, driven by
selenium through /usr/bin/chromedriver (nothing downloaded), opened from disk. A measured row (two
seeds: mean ± SE, a red gain, its post-processed group, links to its run folders) and reported rows
(VoP's figure 1, DGL's) as the page shows them. Skipped, saying why, without chromium or its driver."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.tools.test_tables import write_run
from vop.tools.make_table import make_table

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
                                reason=f"no {CHROMIUM} and {DRIVER} (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)  # the system driver: no download
    yield driver
    driver.quit()


def run_with_dsl(folder: Path, method: str, t2v_r1: float, dsl_r1: float, trainable: int) -> Path:
    run = write_run(folder, method, t2v_r1, trainable=trainable, total=151_277_313)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.update({f"test/dsl/{d}_{m}": 2.0 for d in ("t2v", "v2t") for m in ("R@1", "R@5", "R@10", "MdR", "MnR")})
    metrics["test/dsl/t2v_R@1"] = dsl_r1
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("leaderboard")
    run_with_dsl(tmp / "runs" / "full", "full", 44.0, 48.0, trainable=151_277_313)
    run_with_dsl(tmp / "runs" / "bias0", "bias", 41.0, 45.0, trainable=171_008)
    run_with_dsl(tmp / "runs" / "bias1", "bias", 42.0, 46.0, trainable=171_008)
    make_table([tmp / "runs"], tmp / "out" / "table")
    return tmp / "out" / "table.html"


def cells(row) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {td.get_attribute("data-key"): td.text for td in row.find_elements(By.CSS_SELECTOR, "td[data-key]")}


def test_measured_and_reported_rows_in_chromium(browser, page):
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    block = browser.find_element(By.CSS_SELECTOR, 'section[data-data="msrvtt9k"][data-model="clip_b32"]')
    headers = [th.text for th in block.find_elements(By.CSS_SELECTOR, "thead th")]
    assert "raw: text→video" in headers and "dsl: text→video" in headers and "dsl: video→text" in headers
    bias = block.find_element(By.CSS_SELECTOR, 'tr.measured[data-method="bias"]')
    tds = bias.find_elements(By.TAG_NAME, "td")
    assert [td.text for td in tds[:4]] == ["bias", "measured", "171,008", "0.11"]
    values = cells(bias)
    assert values["t2v_R@1"] == "41.5 ± 0.5" and values["dsl/t2v_R@1"] == "45.5 ± 0.5"  # two seeds; own group
    gain = bias.find_element(By.CSS_SELECTOR, "td.gain")
    assert gain.text == "-2.5 ± 0.5" and gain.value_of_css_property("color") == "rgba(207, 34, 46, 1)"  # red
    links = bias.find_elements(By.TAG_NAME, "a")
    assert [a.text for a in links] == ["run 1", "config", "run 2", "config"]
    assert Path(links[0].get_attribute("href").removeprefix("file://")) == page.parent.parent / "runs" / "bias0"
    assert links[1].get_attribute("href").endswith("/runs/bias0/config.yaml")
    reported = block.find_element(By.CSS_SELECTOR, 'tr.reported[data-method="vop_fc"]')
    assert "reported" in reported.text and "Figure 1" in reported.text and "11.78" in reported.text
    paper_gain = reported.find_element(By.CSS_SELECTOR, "td.gain")
    assert paper_gain.text == "+2.9" and paper_gain.value_of_css_property("color") == "rgba(26, 127, 55, 1)"  # green
    dgl = cells(block.find_element(By.CSS_SELECTOR, 'tr.reported[data-method="dgl"]'))
    assert dgl["t2v_R@1"] == "45.8" and dgl["v2t_R@1"] == "43.5" and dgl["t2v_R@5"] == "-"  # not given: not filled
    rows = [(tr.get_attribute("data-method"), tr.get_attribute("class"))
            for tr in block.find_elements(By.CSS_SELECTOR, "tbody tr")]
    at = rows.index(("bias", "measured"))
    assert rows[at + 1] == ("bias", "reported")  # the published row right below the measured one
    if os.environ.get("VOP_SCREENSHOT"):
        browser.save_screenshot(os.environ["VOP_SCREENSHOT"])
