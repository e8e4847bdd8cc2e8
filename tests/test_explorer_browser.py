"""The explorer in a real browser: Voila serves notebooks/explore.ipynb, headless Debian chromium drives it.

Playwright's own browser download cannot be fetched here, so Playwright drives the system chromium
(``executable_path``; .ci/run installs it with apt-get). Outside CI (env var CI unset) the test skips
when chromium, Playwright or Voila is missing and says which; in CI a missing piece is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
PAGE_TIMEOUT_MS = 180_000  # the kernel loads the pool, all pairs and the exact frontier before the page shows


def _missing() -> list[str]:
    """What the browser test needs and this machine lacks."""
    missing = [] if Path(CHROMIUM).is_file() else [f"{CHROMIUM} (apt-get install -y chromium)"]
    for module in ("playwright", "voila", "ipywidgets"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"python package {module}")
    return missing


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def voila_url(tmp_path_factory):
    """Start Voila on 127.0.0.1 on a free port serving the explorer; yield the page's URL; stop it."""
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test needs {', '.join(missing)} (.ci/run installs chromium)")
        pytest.skip(f"not in CI and this machine lacks {', '.join(missing)}")
    port = _free_port()
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MPLBACKEND": "Agg"}
    voila = shutil.which("voila", path=str(Path(sys.executable).parent)) or "voila"
    with open(log, "w") as handle:
        process = subprocess.Popen([voila, str(REPO_ROOT / "notebooks" / "explore.ipynb"), "--no-browser",
                                    f"--port={port}", "--Voila.ip=127.0.0.1", "--Voila.root_dir=" + str(REPO_ROOT)],
                                   cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:  # any answer, an HTTP error included, means the server is up (no kernel is started by this)
                urllib.request.urlopen(url + "api/kernelspecs", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"voila did not start on port {port}: {log.read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_two_models_selected_in_the_browser_show_the_librarys_oracle_loss(voila_url, tmp_path):
    from playwright.sync_api import sync_playwright

    from mmlaw_utils.analysis.oracle import oracle_loss
    from mmlaw_utils.scoring.assemble import load_loss_matrix

    lm = load_loss_matrix(REPO_ROOT / "data" / "minipool")
    pick = [lm.model_names[0], lm.model_names[7]]
    expected = oracle_loss(lm.to_array(), lm.rows(pick))
    screenshot = Path(os.environ.get("MMLAW_SCREENSHOT_DIR", tmp_path)) / "explorer.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1300})
            page.goto(voila_url, timeout=PAGE_TIMEOUT_MS)
            page.wait_for_selector(".mmlaw-oracle-loss", timeout=PAGE_TIMEOUT_MS)
            assert page.locator(".mmlaw-size").inner_text() == "1"  # it opens on the best single model
            # the frontier plot is drawn: singles, same- and cross-family pairs, the exact frontier, the selection
            page.wait_for_selector(".js-plotly-plot .scatterlayer .trace", timeout=60_000)
            assert page.locator(".js-plotly-plot .scatterlayer .trace").count() == 5
            assert page.locator(".js-plotly-plot .scatterlayer .point").count() > 400
            models = page.locator(".widget-select-multiple select")
            labels = [models.locator(f"option[value*='{name.rsplit('/', 1)[-1]} (']").first.get_attribute("value")
                      for name in pick]
            models.select_option(value=labels)
            page.wait_for_function("document.querySelector('.mmlaw-size').textContent === '2'", timeout=60_000)
            shown = float(page.locator(".mmlaw-oracle-loss").get_attribute("data-value"))
            page.wait_for_selector(".mmlaw-mixture-fitted", timeout=60_000)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert shown == expected
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")
