"""The campaign report as a user sees it: rewritten after every batch while the campaign runs,
served on localhost with auto-refresh (``calopt report --serve``), and opened in a real
headless browser (Debian's chromium and chromedriver, which .ci/run installs) that must load
every image and show the tables and the reproduce command."""

from __future__ import annotations

import re
import shutil
import threading
import urllib.request
from pathlib import Path

import pytest

from calopt.optimize.campaign import run_campaign
from calopt.report.html import write_report
from calopt.report.serve import ReportServer
from tests.helpers import run_cli
from tests.optimize.fake import fake_evaluate
from tests.optimize.test_campaign import campaign

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def campaign_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("campaign") / "c"
    run_campaign(campaign(), folder, evaluator=fake_evaluate)
    write_report(folder)
    return folder


def test_the_report_follows_the_campaign_batch_by_batch(tmp_path):
    finished_in_report = []

    def after_batch() -> None:
        text = write_report(tmp_path / "c").read_text()
        finished_in_report.append(int(re.search(r"<p>(\d+) finished trials", text)[1]))  # type: ignore[index]

    run_campaign(campaign(), tmp_path / "c", evaluator=fake_evaluate, after_batch=after_batch)
    # random: 2 batches of 3, bo: 3 batches of 2 (the last one of 1): the report grew with each
    assert finished_in_report == [3, 6, 8, 10, 11]


def test_report_is_served_with_auto_refresh_and_rewritten_when_the_campaign_changes(campaign_folder):
    server = ReportServer(campaign_folder, port=0, refresh_s=7)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = urllib.request.urlopen(server.url, timeout=30).read().decode()
        assert '<meta http-equiv="refresh" content="7">' in page and "Campaign t" in page
        assert '<meta http-equiv="refresh"' not in (campaign_folder / "report.html").read_text()  # the file is clean
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(server.url + "campaign.sqlite", timeout=30)
        # unchanged database: the report is served as it is; a changed one: written again first
        before = (campaign_folder / "report.html").stat().st_mtime_ns
        urllib.request.urlopen(server.url, timeout=30).read()
        assert (campaign_folder / "report.html").stat().st_mtime_ns == before
        (campaign_folder / "campaign.sqlite").touch()  # as a campaign's next trial does
        urllib.request.urlopen(server.url, timeout=30).read()
        assert (campaign_folder / "report.html").stat().st_mtime_ns > before
    finally:
        server.close()


def test_serve_refuses_bad_input(campaign_folder, tmp_path, capsys):
    rc, _, err = run_cli(["report", str(campaign_folder), "--serve", "--port", "70000"], capsys)
    assert rc == 2 and "--port 70000 must be in [0, 65535]" in err
    rc, _, err = run_cli(["report", str(campaign_folder), "--serve", "--out", str(tmp_path / "r.html")], capsys)
    assert rc == 2 and "give --out or --serve, not both" in err
    rc, _, err = run_cli(["report", str(campaign_folder), "--plot-style", "comic"], capsys)
    assert rc == 2 and "--plot-style 'comic' is not a plot style; expected one of hep, lhcb, matplotlib" in err


def _browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them with apt-get "
                    "where it can): the report was not opened in a browser")  # fmt: skip
    selenium = pytest.importorskip("selenium", reason="selenium (calopt's dev extra) is not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    del selenium
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,2000"):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.mark.parametrize("style", ["hep", "lhcb"])
def test_the_report_in_a_real_browser(campaign_folder, tmp_path, style):
    path = write_report(campaign_folder, tmp_path / f"report-{style}.html", style=style)
    n_img = path.read_text().count("<img")
    driver = _browser()
    try:
        driver.get(path.resolve().as_uri())
        state = driver.execute_script(
            "return {ready: document.readyState, images: document.images.length,"
            " loaded: Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length,"
            " tables: document.querySelectorAll('table').length, rows: document.querySelectorAll('tr').length,"
            " text: document.body.innerText}"
        )
        shot = tmp_path / f"report-{style}.png"
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    assert state["ready"] == "complete" and state["images"] == n_img >= 3
    assert state["loaded"] == state["images"]  # every figure decoded and drawn
    assert state["tables"] >= 2 and state["rows"] >= 12
    assert "calopt optimize campaign-settings.toml" in state["text"] and "Best layouts" in state["text"]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
