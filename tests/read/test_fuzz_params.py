"""Property-based fuzzing of parameters: whatever a client sends, the answer is a 200/304 or a
JSON 400/404 naming the problem, never a 500."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from readkit import Site, activate, body, get

ALLOWED = {200, 304, 400, 404}
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

anything = st.text(max_size=40)
tickerish = st.from_regex(r"[A-Za-z][A-Za-z0-9.-]{0,10}", fullmatch=True)
numberish = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", " ", "1e3", "0x10", "1_0", "+5", "-0", "٣", "NaN", "1.0", "\x00"]),
)
dateish = st.one_of(
    st.dates().map(str),
    st.sampled_from(["2026-12-18", "2026-12-04", "2026-02-30", "20261218", "2026-12-18T00:00"]),
)
value = st.one_of(anything, numberish, tickerish, dateish)
# In a path, an empty segment would make "/alerts/ticker/" — another path, which the gateway
# (API Gateway, or Chalice's local one) answers itself with a 403.
segment = st.one_of(tickerish, st.text(min_size=1, max_size=40))


@pytest.fixture
def site(local_published: Site, monkeypatch: pytest.MonkeyPatch) -> Site:
    activate(local_published, monkeypatch)
    return local_published


def check(client: Client, path: str, **headers: str) -> int:
    response = get(client, path, **headers)
    assert response.status_code in ALLOWED, (path, response.status_code, response.body[:300])
    if response.status_code >= 400:
        data = body(response)
        assert isinstance(data["error"], str) and isinstance(data["message"], str)
        assert isinstance(data["details"], list)
    elif response.status_code == 200:
        assert "generation" in body(response)
    return response.status_code


def q(text: str) -> str:
    return quote(text, safe="")


@FUZZ
@given(ticker=value, detector=value, min_score=value, limit=value)
def test_alerts_query(site: Site, client: Client, ticker, detector, min_score, limit) -> None:
    check(
        client,
        f"/alerts?ticker={q(ticker)}&detector={q(detector)}&min_score={q(min_score)}"
        f"&limit={q(limit)}",
    )


@FUZZ
@given(ticker=segment, expiration=value)
def test_snapshot(site: Site, client: Client, ticker, expiration) -> None:
    check(client, f"/options/{q(ticker)}/snapshot?expiration={q(expiration)}")


@FUZZ
@given(ticker=segment, days=value, route=st.sampled_from(
    ["/options/{t}/history?days={v}", "/alerts/ticker/{t}?limit={v}",
     "/options/{t}/expirations?x={v}", "/features/{t}/latest?y={v}"]))  # fmt: skip
def test_ticker_routes(site: Site, client: Client, ticker, days, route) -> None:
    check(client, route.format(t=q(ticker), v=q(days)))


@FUZZ
@given(limit=value, min_score=value, route=st.sampled_from(
    ["/alerts/latest", "/alerts/latest/summary", "/scans/latest", "/tickers"]))  # fmt: skip
def test_latest_routes(site: Site, client: Client, limit, min_score, route) -> None:
    path = f"{route}?limit={q(limit)}&min_score={q(min_score)}"
    status = check(client, path)
    if route == "/tickers":  # it takes no parameters: the first one sent is named
        assert status == 400
        assert body(get(client, path))["details"][0]["field"] == "limit"


@FUZZ
@given(header=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60))
def test_if_none_match_header(site: Site, client: Client, header: str) -> None:
    assert check(client, "/options/SPY/expirations", **{"If-None-Match": header}) in (200, 304)
