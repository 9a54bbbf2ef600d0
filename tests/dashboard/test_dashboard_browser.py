"""The dashboard in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven
by Selenium against a live ``chalice local`` over data exported by ``scripts/ocd.py cycle``.

If the detectors have not raised alerts of at least two kinds, a few are inserted into the DuckDB
``alerts`` table and the cycle runs again to export them. Screenshots land in ``test-artifacts/``.
Accessibility is checked with axe-core (vendored in ``vendor/``, injected into the page; the app
never serves it). Install the browser with ``bash .ci/install-browser.sh``.
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
from contextlib import contextmanager
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
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"  # axe-core 4.10.3 (MPL-2.0)

# A missing browser fails the suite (it is never skipped): .ci/run installs it.
assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
    "needs /usr/bin/chromium and /usr/bin/chromedriver: run bash .ci/install-browser.sh"
)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
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


@contextmanager
def _serving(data_dir: Path, log_dir: Path) -> Iterator[str]:
    """``chalice local`` over ``data_dir``; yields its base URL."""
    port = _free_port()
    log = (log_dir / "chalice.log").open("w+b")
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


@pytest.fixture(scope="module")
def server(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _serving(data_dir, tmp_path_factory.mktemp("chalice")) as base:
        yield base


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


def _open(driver: Any, url: str) -> None:
    """Load ``url`` afresh: from one hash of the page to another is no new page (the view
    would refresh in place while a test reads it)."""
    driver.get("about:blank")
    driver.get(url)


def _open_overview(driver: Any, server: str) -> None:
    _open(driver, server + "#/")
    _wait(driver, _ready_rows, "alerts table rows")


def _smile_points(driver: Any, expiration: str) -> int:
    """Strikes the smile of ``expiration`` plots (the chart's x values)."""
    figures = driver.find_elements(By.CSS_SELECTOR, f'figure[data-smile-for="{expiration}"]')
    return int(figures[0].get_attribute("data-points")) if figures else 0


def _check_smile(driver: Any, server: str, ticker: str) -> str:
    """The smile drawn for the chosen expiry has one x per strike of that expiry."""
    view = driver.find_element(By.ID, "ticker-view")
    expiration = _wait(driver, lambda d: view.get_attribute("data-expiration"), "an expiry")
    _wait(driver, lambda d: _smile_points(d, expiration) > 0, f"smile of {expiration}")
    snap = _get(f"{server}options/{ticker}/snapshot?expiration={expiration}")
    strikes = {c["strike"] for c in snap["calls"] + snap["puts"]}
    assert _smile_points(driver, expiration) == len(strikes), expiration
    atm = driver.find_elements(By.CSS_SELECTOR, "#chain-table tbody tr.atm")
    assert len(atm) == 1
    return expiration


def _tile(driver: Any, key: str, where: str = "#expiry-tiles") -> str:
    return driver.find_element(By.CSS_SELECTOR, f'{where} [data-tile="{key}"] .kpi-value').text


def _dollars(text: str) -> float:
    """ "$1,234.56" (or "±$12.34 1.65%") → 1234.56"""
    return float(text.split()[0].lstrip("±$").replace(",", "").replace("−", "-"))


def _shows(text: str, value: float) -> bool:
    """``text`` is ``value`` in dollars to the cent (rounded either way at a half cent)."""
    return text.lstrip("±").startswith("$") and abs(_dollars(text) - value) <= 0.0051


def _chart(driver: Any, name: str) -> Any:
    return _wait(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, f'figure[data-chart="{name}"]'),
        f"chart {name}",
    )[0]


def _axe(driver: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    driver.execute_script(AXE.read_text())
    driver.set_script_timeout(60)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        "  .then((r) => done(r.violations), (e) => done([{id: 'axe-error', impact: 'critical',"
        "   help: String(e), nodes: []}]));"
    )
    return [
        {"id": v["id"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"][:5]]}
        for v in result
        if v.get("impact") in ("serious", "critical")
    ]


# ---- the tests -------------------------------------------------------------------------------


def test_header_names_the_provider_and_both_clocks(
    driver: Any, server: str, data_dir: Path
) -> None:
    manifest = _exported(data_dir, "manifest.json")
    health = _get(server + "health")
    _open_overview(driver, server)
    gen = driver.find_element(By.ID, "generation")
    _wait(driver, lambda d: gen.text == manifest["generation"], "the manifest's generation")
    provider = driver.find_element(By.ID, "provider-badge")
    assert provider.text == "SYNTHETIC" and provider.get_attribute("data-provider") == "synthetic"
    assert "not real quotes" in provider.get_attribute("title")
    # the quotes' own time, in New York time with UTC on hover, beside the export's
    quotes = driver.find_element(By.CSS_SELECTOR, "#quotes-time time")
    assert quotes.get_attribute("datetime") == health["market"]["quotes_as_of"] == AS_OF
    assert quotes.text.endswith("ET") and "13:00" in quotes.text  # 18:00 UTC, an early close
    assert quotes.get_attribute("title") == "2026-11-27 18:00:00 UTC"
    assert "ago" in driver.find_element(By.ID, "quotes-age").text
    assert "ago" in driver.find_element(By.ID, "age").text
    assert driver.find_element(By.CSS_SELECTOR, "#export-time time").text.endswith("ET")
    market = driver.find_element(By.ID, "market-badge")
    expected = {"open": ("open", "overdue"), "closed": ("closed",), "unknown": ("unknown",)}
    assert market.get_attribute("data-market") in expected[health["market"]["state"]]
    if health["market"]["state"] == "closed":
        assert market.text.upper() == "MARKET CLOSED"
    source = driver.find_element(By.ID, "source-badge")  # shown only for an archive fallback
    assert source.get_attribute("data-source") == "latest" and not source.is_displayed()
    assert "chains" in driver.find_element(By.ID, "exports").text
    _screenshot(driver, "desktop-overview")
    assert _severe(driver) == []


def test_watchlist_shows_change_and_earnings_with_one_tab_stop_per_row(
    driver: Any, server: str
) -> None:
    tickers = {t["ticker"]: t for t in _get(server + "tickers")["tickers"]}
    _open_overview(driver, server)
    rows = driver.find_elements(By.CSS_SELECTOR, "#watchlist-body tr.ticker-row")
    assert {r.get_attribute("data-ticker") for r in rows} == set(WATCHLIST.split(","))
    for row in rows:
        t = tickers[row.get_attribute("data-ticker")]
        cells = row.find_elements(By.CSS_SELECTOR, "td")
        assert cells[
            1
        ].text == f"{'+' if t['change_pct'] > 0 else ''}{t['change_pct']:.2f}%".replace("-", "−")
        earnings = t["next_earnings"]
        assert cells[4].text == (earnings[5:] if earnings else "—")
        focusable = row.find_elements(By.CSS_SELECTOR, "a, button, [tabindex]")
        assert len(focusable) == 1, row.get_attribute("data-ticker")
    assert any(t["next_earnings"] for t in tickers.values())  # the calendar reached the page
    # the search box filters the watchlist and opens a ticker
    box = driver.find_element(By.ID, "ticker-input")
    box.send_keys("tsl")
    shown = "#watchlist-body tr.ticker-row:not([hidden])"
    _wait(
        driver,
        lambda d: (
            [r.get_attribute("data-ticker") for r in d.find_elements(By.CSS_SELECTOR, shown)]
            == ["TSLA"]
        ),
        "only TSLA shown",
    )
    box.send_keys(Keys.ENTER)
    view = driver.find_element(By.ID, "ticker-view")
    _wait(driver, lambda d: view.get_attribute("data-ticker") == "TSLA", "the TSLA view")
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

    # each row opens with a real button, from the keyboard too
    button = _alert_rows(driver)[0].find_element(By.CSS_SELECTOR, "button.expand")
    assert button.get_attribute("aria-expanded") == "false"
    button.send_keys(Keys.ENTER)
    detail = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".alert-detail"), "detail")
    text = detail[0].get_attribute("textContent")
    assert "Risk factors" in text and "Strategies" in text and "Key metrics" in text
    button = _alert_rows(driver)[0].find_element(By.CSS_SELECTOR, "button.expand")
    assert button.get_attribute("aria-expanded") == "true"
    assert driver.switch_to.active_element == button  # focus stays on the row's button
    time_cell = _alert_rows(driver)[0].find_element(By.CSS_SELECTOR, "time")
    assert time_cell.text.endswith("ET") and time_cell.get_attribute("title").endswith("UTC")
    _screenshot(driver, "desktop-alerts-expanded")
    assert _severe(driver) == []


def test_an_alert_link_opens_that_alert(driver: Any, server: str, data_dir: Path) -> None:
    """``#/alerts/<id>``, the url every delivered alert carries (``deliveryformat.alert_url``):
    the overview with that alert's details open and its button focused; an unknown id says so."""
    from chalicelib.deliveryformat import alert_url

    alerts = _exported(data_dir, "alerts.json")["alerts"]
    oldest = alerts[-1]  # the last row: the page has to bring it into view
    _open(driver, alert_url(server, oldest["id"]) or "")
    row = _wait(
        driver,
        lambda d: d.find_elements(
            By.CSS_SELECTOR, f'tr.alert-row.open[data-alert-id="{oldest["id"]}"]'
        ),
        "the linked alert open",
    )[0]
    detail = driver.find_element(By.CSS_SELECTOR, ".alert-detail")
    assert oldest["explanation"]["summary"] in row.text
    assert "Risk factors" in detail.get_attribute("textContent")
    button = row.find_element(By.CSS_SELECTOR, "button.expand")
    assert button.get_attribute("aria-expanded") == "true"
    assert driver.switch_to.active_element == button
    assert len(driver.find_elements(By.CSS_SELECTOR, "tr.alert-row.open")) == 1

    driver.get(server + "#/alerts/no-such-alert")
    note = driver.find_element(By.ID, "alerts-note")
    _wait(driver, lambda d: "no-such-alert is not among the alerts shown" in note.text, "a note")
    assert _severe(driver) == []


def test_ticker_view_binds_tiles_and_charts_to_the_selected_expiry(
    driver: Any, server: str
) -> None:
    _open_overview(driver, server)
    ticker = "SPY"
    driver.find_element(By.CSS_SELECTOR, f'#watchlist-body tr[data-ticker="{ticker}"] td').click()
    _wait(driver, lambda d: d.find_element(By.ID, "ticker-view").is_displayed(), "ticker view")
    first = _check_smile(driver, server, ticker)
    features = _get(f"{server}features/{ticker}/latest")["features"]
    by_expiry = {r["expiration"]: r for r in features["by_expiry"]}

    def bound_to(expiration: str) -> None:
        record = by_expiry[expiration]
        assert _shows(_tile(driver, "max_pain"), record["max_pain"])
        assert _tile(driver, "sigma_move").startswith("±")
        assert _shows(_tile(driver, "sigma_move"), record["sigma_move"])
        assert _shows(_tile(driver, "straddle"), record["straddle"])
        assert expiration in driver.find_element(By.CSS_SELECTOR, ".tiles-head").text
        gex = driver.find_element(By.CSS_SELECTOR, "#ticker-view .gex-card").text
        assert f"Gamma exposure by strike · {expiration}" in gex  # the chart is the expiry's
        assert record.get("gex_by_strike") or "No gamma exposure" in gex

    bound_to(first)
    select = Select(driver.find_element(By.ID, "expiry-select"))
    values = [o.get_attribute("value") for o in select.options]
    other = next(v for v in reversed(values) if v != first and v in by_expiry)
    select.select_by_value(other)
    view = driver.find_element(By.ID, "ticker-view")
    _wait(driver, lambda d: view.get_attribute("data-expiration") == other, "the other expiry")
    assert _check_smile(driver, server, ticker) == other
    bound_to(other)
    # units on the whole chain's tiles, from the catalogue
    assert _tile(driver, "gex_total", "#chain-tiles").endswith("per 1 % move")
    assert _tile(driver, "iv_rank", "#chain-tiles").endswith("/ 100")
    select.select_by_value(first)
    _wait(driver, lambda d: _smile_points(d, first) > 0, "the first expiry again")
    _chart(driver, "ATM implied volatility by expiry")
    # the chain: greeks and mid beside the quotes, ITM shaded on each side
    heads = [
        th.text for th in driver.find_elements(By.CSS_SELECTOR, "#chain-table thead tr + tr th")
    ]
    for name in ("MID $", "LAST $", "Γ", "Θ $/D", "VEGA $"):
        assert name in heads, heads
    assert driver.find_elements(By.CSS_SELECTOR, "#chain-table td.itm.call")
    assert driver.find_elements(By.CSS_SELECTOR, "#chain-table td.itm.put")
    _screenshot(driver, "desktop-ticker")
    assert _severe(driver) == []


def test_charts_show_values_under_the_cursor_and_zoom(driver: Any, server: str) -> None:
    _open(driver, server + "#/t/SPY")
    smile = _chart(driver, f"Volatility smile, {_check_smile(driver, server, 'SPY')}")
    over = smile.find_element(By.CSS_SELECTOR, ".u-over")
    ActionChains(driver).move_to_element(over).perform()
    x_value = smile.find_element(By.CSS_SELECTOR, "[data-x]")
    _wait(driver, lambda d: x_value.text.startswith("strike "), "the strike under the cursor")
    values = [o.text for o in smile.find_elements(By.CSS_SELECTOR, "button.series output")]
    assert any(v.endswith("%") for v in values), values
    # a legend button hides its series
    puts = smile.find_element(By.CSS_SELECTOR, 'button.series[data-series="OTM puts"]')
    puts.click()
    assert puts.get_attribute("aria-pressed") == "false"

    history = _chart(driver, "ATM implied volatility history")
    over = history.find_element(By.CSS_SELECTOR, ".u-over")
    ActionChains(driver).move_to_element(over).perform()
    label = history.find_element(By.CSS_SELECTOR, "[data-x]")
    _wait(driver, lambda d: label.text.endswith("ET") or "ET (" in label.text, "a session")
    full = (float(history.get_attribute("data-x-min")), float(history.get_attribute("data-x-max")))
    width = over.size["width"]
    drag = ActionChains(driver).move_to_element_with_offset(over, -width // 4, 0)
    drag.click_and_hold().move_by_offset(width // 4, 0).release().perform()

    def zoomed(d: Any) -> bool:
        low, high = (float(history.get_attribute(a)) for a in ("data-x-min", "data-x-max"))
        return full[0] < low < high < full[1] and (high - low) < 0.5 * (full[1] - full[0])

    _wait(driver, zoomed, "the history zoomed in")
    ActionChains(driver).double_click(over).perform()
    _wait(
        driver,
        lambda d: float(history.get_attribute("data-x-min")) == full[0],
        "the history zoomed out again",
    )
    assert _severe(driver) == []


def test_the_shown_chain_downloads_as_csv(driver: Any, server: str, tmp_path: Path) -> None:
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    _open(driver, server + "#/t/AAPL")
    expiration = _check_smile(driver, server, "AAPL")
    shown = [
        float(r.get_attribute("data-strike"))
        for r in driver.find_elements(By.CSS_SELECTOR, "#chain-table tbody tr")
    ]
    driver.find_element(By.ID, "chain-csv").click()
    files = _wait(driver, lambda d: list(tmp_path.glob("AAPL_*.csv")), "the CSV file")
    lines = files[0].read_text().splitlines()
    header = lines[0].split(",")
    assert header[:4] == ["expiration", "right", "strike", "bid"] and "gamma" in header
    snap = _get(f"{server}options/AAPL/snapshot?expiration={expiration}")
    quotes = {("C", c["strike"]): c for c in snap["calls"]} | {
        ("P", c["strike"]): c for c in snap["puts"]
    }
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    assert {float(r["strike"]) for r in rows} == set(shown)
    assert len(rows) == sum(1 for (_, k) in quotes if k in set(shown))
    for row in rows:
        quote = quotes[(row["right"], float(row["strike"]))]
        assert row["expiration"] == expiration
        assert float(row["bid"]) == quote["bid"] and float(row["ask"]) == quote["ask"]
        assert row["gamma"] == ("" if quote["gamma"] is None else repr(quote["gamma"]))


def test_phone_width_switches_chain_sides_instead_of_scrolling(driver: Any, server: str) -> None:
    _viewport(driver, *PHONE, mobile=True)
    try:
        _open_overview(driver, server)
        overflow = "return document.documentElement.scrollWidth - window.innerWidth"
        assert driver.execute_script(overflow) <= 1
        scroll = "return arguments[0].scrollWidth - arguments[0].clientWidth"
        for card in ("#watchlist-card", "#scans-card"):  # no sideways scrolling inside either
            wrap = driver.find_element(By.CSS_SELECTOR, f"{card} .table-wrap")
            assert driver.execute_script(scroll, wrap) <= 1, card
        _screenshot(driver, "phone-overview")
        _open(driver, server + "#/t/AAPL")
        view = driver.find_element(By.ID, "ticker-view")
        _wait(driver, lambda d: view.get_attribute("data-expiration"), "AAPL ticker view")
        _check_smile(driver, server, "AAPL")
        assert driver.execute_script(overflow) <= 1
        table = driver.find_element(By.ID, "chain-table")
        assert table.get_attribute("data-side") == "C"
        wrap = driver.find_element(By.CSS_SELECTOR, ".chain-card .table-wrap")
        assert driver.execute_script(scroll, wrap) <= 1  # one side fits: no sideways scrolling
        driver.find_element(By.CSS_SELECTOR, '.side-switch button[data-side="P"]').click()
        table = _wait(
            driver,
            lambda d: [t for t in d.find_elements(By.ID, "chain-table")
                       if t.get_attribute("data-side") == "P"],
            "the puts side",
        )[0]  # fmt: skip
        head = table.find_element(By.CSS_SELECTOR, "thead").text.upper()
        assert "PUTS" in head and "CALLS" not in head
        _screenshot(driver, "phone-ticker")
    finally:
        _viewport(driver, *DESKTOP)
    assert _severe(driver) == []


def test_no_serious_accessibility_violations(driver: Any, server: str) -> None:
    _open_overview(driver, server)
    assert driver.find_elements(By.CSS_SELECTOR, "#delivery-body")
    assert "No delivery configured" in driver.find_element(By.ID, "delivery-body").text
    assert _axe(driver) == []
    _open(driver, server + "#/t/SPY")
    _check_smile(driver, server, "SPY")
    _chart(driver, "ATM implied volatility history")
    assert _axe(driver) == []
    assert driver.find_element(By.ID, "announcer").text == ""  # nothing changed: nothing said


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
    announcer = driver.find_element(By.ID, "announcer")
    _wait(driver, lambda d: f"generation {new}" in announcer.text, "the change announced")
    _wait(driver, _ready_rows, "alerts after the refresh")
    assert _severe(driver) == []


def test_before_the_first_export_every_panel_says_it_waits(
    driver: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Nothing exported yet: empty states, not blank panels or errors."""
    empty = tmp_path_factory.mktemp("ocd-empty")
    with _serving(empty, tmp_path_factory.mktemp("chalice-empty")) as base:
        assert _get(base + "health")["status"] == "empty"
        _open(driver, base + "#/")
        for note_id in ("alerts-note", "watchlist-note", "scans-note"):
            box = driver.find_element(By.ID, note_id)
            _wait(driver, lambda d, b=box: "Waiting for the first export" in b.text, note_id)
        assert driver.find_element(By.ID, "provider-badge").text == "NO DATA"
        assert driver.find_element(By.ID, "status-badge").text.lower() == "export empty"
        assert "Nothing has been exported yet" in driver.find_element(By.ID, "stale-banner").text
        assert "No delivery configured" in driver.find_element(By.ID, "delivery-body").text
        assert not driver.find_elements(By.CSS_SELECTOR, ".note.error")
        _open(driver, base + "#/t/SPY")
        view = driver.find_element(By.ID, "ticker-view")
        _wait(driver, lambda d: "Waiting for the first export" in view.text, "the ticker view")
        _screenshot(driver, "desktop-empty")
