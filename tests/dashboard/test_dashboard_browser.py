"""The dashboard in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven
by Selenium against a live ``chalice local`` over data exported by ``scripts/ocd.py cycle``.

If the detectors have not raised alerts of at least two kinds, a few are inserted into the DuckDB
``alerts`` table and the cycle runs again to export them. Screenshots land in ``test-artifacts/``.
Install the browser with ``bash .ci/install-browser.sh``.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
AS_OF = "2026-11-27T18:00:00Z"
NEXT_AS_OF = "2026-11-27T21:05:00Z"
WATCHLIST = "SPY,AAPL,TSLA"
DESKTOP = (1366, 900)
PHONE = (390, 844)
WAIT = 30

# A missing browser fails the suite (it is never skipped): .ci/run installs it.
assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
    "needs /usr/bin/chromium and /usr/bin/chromedriver: run bash .ci/install-browser.sh"
)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

# ---- data ------------------------------------------------------------------------------------


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCD_")}
    env.update(OCD_DATA_DIR=str(data_dir), OCD_WATCHLIST=WATCHLIST, OCD_LOG_LEVEL="WARNING")
    return env


def _cycle(env: dict[str, str], as_of: str) -> None:
    done = subprocess.run(
        [sys.executable, "scripts/ocd.py", "cycle", "--as-of", as_of],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"ocd.py cycle failed:\n{done.stdout}\n{done.stderr}"


def _exported(data_dir: Path, name: str) -> dict[str, Any]:
    return json.loads((data_dir / "exports" / name).read_bytes())


def _alert(n: int, ticker: str, detector: str, score: float, summary: str) -> list[Any]:
    metrics = {"atm_iv": 0.21 + n / 100, "iv_percentile": 60.0 + 5 * n, "threshold": 80.0}
    explanation = {
        "summary": summary,
        "rationale": f"Inserted by the dashboard test to exercise the alerts table ({detector}).",
        "key_metrics": metrics,
        "risk_factors": ["Synthetic data: not a trading signal.", "Volatility can stay high."],
    }
    strategies = ["Iron condor with defined wings", "Covered calls"]
    created = datetime.fromisoformat(AS_OF.replace("Z", "+00:00")) - timedelta(minutes=n)
    return [
        f"dashboard-test-{n}",
        "scan_dashboard_test",
        ticker,
        detector,
        score,
        json.dumps(metrics),
        json.dumps(explanation),
        json.dumps(strategies),
        created.astimezone(UTC).replace(tzinfo=None),
    ]


SEED = [
    ("SPY", "rich_premium", 82.5, "SPY 30-day IV sits in the 95th percentile of its past year"),
    ("AAPL", "unusual_activity", 67.0, "AAPL call volume is 3x open interest at the 330 strike"),
    ("TSLA", "skew_anomaly", 54.2, "TSLA 25-delta skew is 2.4 standard deviations above normal"),
    ("SPY", "unusual_activity", 48.0, "SPY put volume is 2x open interest at the 760 strike"),
    ("AAPL", "rich_premium", 71.3, "AAPL 30-day IV sits in the 88th percentile of its past year"),
    ("TSLA", "rich_premium", 91.0, "TSLA 30-day IV sits in the 99th percentile of its past year"),
]


def _seed_alerts(db_path: Path) -> None:
    from chalicelib.write.store import Store

    with Store(db_path) as store:
        store.con.executemany(
            "INSERT INTO alerts (id, scan_id, ticker, detector_name, score, metrics, explanation,"
            " strategies, created_at) VALUES (?, ?, ?, ?, ?, ?::JSON, ?::JSON, ?::JSON, ?)",
            [_alert(n, *row) for n, row in enumerate(SEED)],
        )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exported data with alerts of at least two detectors (real ones when there are)."""
    path = tmp_path_factory.mktemp("ocd-dashboard")
    env = _env(path)
    _cycle(env, AS_OF)
    alerts = _exported(path, "alerts.json")["alerts"]
    if len({a["detector_name"] for a in alerts}) < 2:
        _seed_alerts(path / "ocd.duckdb")
        _cycle(env, AS_OF)  # the snapshot is already stored: this re-exports
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = (tmp_path_factory.mktemp("chalice") / "chalice.log").open("w+b")
    chalice = str(Path(sys.executable).with_name("chalice"))
    proc = subprocess.Popen(
        [chalice, "local", "--no-autoreload", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=_env(data_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                _get(base + "health")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"chalice local did not start:\n{log.read().decode()[-3000:]}")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


# ---- browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingOptions", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        _viewport(browser, *DESKTOP)
        yield browser
    finally:
        browser.quit()


def _viewport(driver: Any, width: int, height: int, mobile: bool = False) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": width,
            "height": height,
            "deviceScaleFactor": 2 if mobile else 1,
            "mobile": mobile,
        },
    )


def _screenshot(driver: Any, name: str) -> Path:
    """The whole page, not just the viewport."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def _severe(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def _wait(driver: Any, condition: Any, what: str, timeout: float = WAIT) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message=what)


def _alert_rows(driver: Any) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, "#alerts-table tbody tr.alert-row")


def _ready_rows(driver: Any) -> list[Any] | bool:
    table = driver.find_element(By.ID, "alerts-table")
    return table.get_attribute("data-state") == "ready" and _alert_rows(driver)


def _open_overview(driver: Any, server: str) -> None:
    driver.get(server + "#/")
    _wait(driver, _ready_rows, "alerts table rows")


def _smile_points(driver: Any, expiration: str) -> int:
    selector = f'svg[data-smile-for="{expiration}"] circle[data-smile-point]'
    return len(driver.find_elements(By.CSS_SELECTOR, selector))


def _check_smile(driver: Any, server: str, ticker: str) -> str:
    """The smile drawn for the chosen expiry has one point per strike of that expiry."""
    view = driver.find_element(By.ID, "ticker-view")
    expiration = _wait(driver, lambda d: view.get_attribute("data-expiration"), "an expiry")
    _wait(driver, lambda d: _smile_points(d, expiration) > 0, f"smile of {expiration}")
    snap = _get(f"{server}options/{ticker}/snapshot?expiration={expiration}")
    strikes = {c["strike"] for c in snap["calls"] + snap["puts"]}
    assert _smile_points(driver, expiration) == len(strikes), expiration
    atm = driver.find_elements(By.CSS_SELECTOR, "#chain-table tbody tr.atm")
    assert len(atm) == 1
    return expiration


# ---- the tests -------------------------------------------------------------------------------


def test_header_shows_the_published_generation(driver: Any, server: str, data_dir: Path) -> None:
    manifest = _exported(data_dir, "manifest.json")
    _open_overview(driver, server)
    gen = driver.find_element(By.ID, "generation")
    _wait(driver, lambda d: gen.text == manifest["generation"], "the manifest's generation")
    assert driver.find_element(By.ID, "source-badge").get_attribute("data-source") == "latest"
    assert "updated" in driver.find_element(By.ID, "age").text
    assert "chains" in driver.find_element(By.ID, "exports").text
    rows = driver.find_elements(By.CSS_SELECTOR, "#watchlist-body tr.ticker-row")
    assert {r.get_attribute("data-ticker") for r in rows} == set(WATCHLIST.split(","))
    assert driver.find_elements(By.CSS_SELECTOR, "#scans-body tr")
    _screenshot(driver, "desktop-overview")
    assert _severe(driver) == []


def test_alerts_filter_by_detector_and_sort(driver: Any, server: str) -> None:
    _open_overview(driver, server)
    rows = _alert_rows(driver)
    detectors = [r.get_attribute("data-detector") for r in rows]
    assert len(set(detectors)) >= 2, detectors
    rarest = min(set(detectors), key=detectors.count)

    Select(driver.find_element(By.ID, "filter-detector")).select_by_value(rarest)

    def narrowed(d: Any) -> list[Any] | bool:
        now = _ready_rows(d)
        return bool(now) and len(now) < len(rows) and now

    now = _wait(driver, narrowed, f"rows of {rarest} only")
    assert len(now) == detectors.count(rarest)
    for row in now:
        assert row.get_attribute("data-detector") == rarest
        assert row.find_element(By.CSS_SELECTOR, "td.detector").text == rarest

    Select(driver.find_element(By.ID, "filter-detector")).select_by_value("")
    _wait(driver, lambda d: len(_ready_rows(d) or []) == len(rows), "all rows again")
    driver.find_element(By.ID, "sort-score").click()
    scores = [float(r.find_element(By.CSS_SELECTOR, ".score").text) for r in _alert_rows(driver)]
    assert scores == sorted(scores, reverse=True)

    _alert_rows(driver)[0].click()  # expands into its explanation
    detail = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".alert-detail"), "detail")
    text = detail[0].get_attribute("textContent")
    assert "Risk factors" in text and "Strategies" in text and "Key metrics" in text
    _screenshot(driver, "desktop-alerts-expanded")
    assert _severe(driver) == []


def test_ticker_view_draws_one_smile_point_per_strike(driver: Any, server: str) -> None:
    _open_overview(driver, server)
    ticker = "SPY"
    driver.find_element(By.CSS_SELECTOR, f'#watchlist-body tr[data-ticker="{ticker}"] td').click()
    _wait(driver, lambda d: d.find_element(By.ID, "ticker-view").is_displayed(), "ticker view")
    first = _check_smile(driver, server, ticker)

    select = Select(driver.find_element(By.ID, "expiry-select"))
    values = [o.get_attribute("value") for o in select.options]
    other = next(v for v in reversed(values) if v != first)
    select.select_by_value(other)
    view = driver.find_element(By.ID, "ticker-view")
    _wait(driver, lambda d: view.get_attribute("data-expiration") == other, "the other expiry")
    assert _check_smile(driver, server, ticker) == other
    select.select_by_value(first)
    _wait(driver, lambda d: _smile_points(d, first) > 0, "the first expiry again")
    term = "svg[aria-label='ATM implied volatility by expiry']"
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, term), "term structure chart")
    _screenshot(driver, "desktop-ticker")
    assert _severe(driver) == []


def test_phone_width_keeps_the_page_inside_the_screen(driver: Any, server: str) -> None:
    _viewport(driver, *PHONE, mobile=True)
    try:
        _open_overview(driver, server)
        overflow = "return document.documentElement.scrollWidth - window.innerWidth"
        assert driver.execute_script(overflow) <= 1
        _screenshot(driver, "phone-overview")
        driver.get(server + "#/t/AAPL")
        view = driver.find_element(By.ID, "ticker-view")
        _wait(driver, lambda d: view.get_attribute("data-expiration"), "AAPL ticker view")
        _check_smile(driver, server, "AAPL")
        assert driver.execute_script(overflow) <= 1
        _screenshot(driver, "phone-ticker")
    finally:
        _viewport(driver, *DESKTOP)
    assert _severe(driver) == []


def test_a_new_generation_refreshes_the_page_in_place(
    driver: Any, server: str, data_dir: Path
) -> None:
    _open_overview(driver, server)
    old = _exported(data_dir, "manifest.json")["generation"]
    gen = driver.find_element(By.ID, "generation")
    _wait(driver, lambda d: gen.text == old, "the current generation")
    driver.execute_script("window.__notReloaded = true")
    _cycle(_env(data_dir), NEXT_AS_OF)
    new = _exported(data_dir, "manifest.json")["generation"]
    assert new != old
    _wait(driver, lambda d: gen.text == new, "the new generation", timeout=25)
    assert driver.execute_script("return window.__notReloaded === true")
    _wait(driver, _ready_rows, "alerts after the refresh")
    assert _severe(driver) == []
