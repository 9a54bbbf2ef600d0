"""The damage matrix, for the combinations the read suite does not already cover.

``tests/read`` damages ``alerts.json`` (alone and with its archive), every kind at once, the
manifest alone, and chain documents. Here: each other kind's latest document (scans, chains
index, features) damaged every way, with its archives intact, the newest one damaged, or none
left; and the manifest damaged together with its newest archive, or with no archive left. In
every case each route answers 200 (or 404 for a ticker no manifest names), from the newest copy
a manifest vouches for, or empty and flagged ``source: none``; never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chalice.test import Client
from readkit import DAMAGES, WATCHLIST, Site, Snapshot, activate, body, damage, get

from chalicelib import exportformat as fmt

KINDS = ("scans", "chains", "features")  # alerts: tests/read/test_route_fallback.py
ARCHIVES = ("intact", "newest damaged", "absent")
ROUTE = {"scans": "/scans/latest", "chains": "/tickers"}  # features: read via /tickers too


@pytest.fixture
def broken(site: Site, pristine: Snapshot, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """The two-generation site, served; whatever a test breaks is put back afterwards."""
    activate(site, monkeypatch)
    yield site
    site.restore(pristine)


def break_archives(site: Site, kind: str, archives: str, how: str) -> None:
    if archives == "newest damaged":  # the current generation's; older ones intact
        damage(site, fmt.archives_newest_first(site.storage, kind)[0], how)
    elif archives == "absent":
        for key in fmt.archives_newest_first(site.storage, kind):
            site.delete(key)


def every_route(client: Client, tickers_known: bool) -> dict[str, dict]:
    """Every data route and /health: 200, or 404 for ticker routes when no manifest names any
    ticker; always JSON. Returns the 200 bodies by path."""
    answers = {}
    paths = ["/health", "/tickers", "/alerts/latest", "/alerts/latest/summary", "/alerts",
             "/scans/latest"]  # fmt: skip
    for ticker in WATCHLIST:
        paths += [f"/options/{ticker}/snapshot", f"/options/{ticker}/expirations",
                  f"/options/{ticker}/history", f"/features/{ticker}/latest",
                  f"/alerts/ticker/{ticker}"]  # fmt: skip
    for path in paths:
        response = get(client, path)
        data = body(response)
        if tickers_known or not path.startswith(("/options/", "/features/", "/alerts/ticker/")):
            assert response.status_code == 200, (path, response.status_code, data)
            answers[path] = data
        else:
            assert response.status_code == 404 and data["details"][0]["field"] == "ticker"
    return answers


@pytest.mark.parametrize("archives", ARCHIVES)
@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_latest_document(
    broken: Site, client: Client, kind: str, how: str, archives: str
) -> None:
    gen1, gen2 = broken.generations
    damage(broken, fmt.latest_key(kind), how)
    break_archives(broken, kind, archives, how)
    expected = {"intact": ("archive", gen2), "newest damaged": ("archive", gen1),
                "absent": ("none", None)}[archives]  # fmt: skip

    loaded = broken.reader().document(kind)  # type: ignore[arg-type]
    assert (loaded.source, loaded.generation) == expected
    answers = every_route(client, tickers_known=True)
    if kind in ROUTE:
        data = answers[ROUTE[kind]]
        assert (data["source"], data["generation"]) == expected
        rows = data["scans" if kind == "scans" else "tickers"]
        assert bool(rows) == (archives != "absent") and data["total_count"] == len(rows)
    else:  # /tickers reads features for IV rank: only from its own generation (issue 15,
        # finding 5), so an older generation's (or none left) means none shown, and said
        tickers = answers["/tickers"]
        ranks = [row["iv_rank"] for row in tickers["tickers"]]
        assert len(ranks) == len(WATCHLIST)
        assert (archives != "intact") == all(rank is None for rank in ranks)
        fallbacks = [(f["part"], f["generation"]) for f in tickers["fallbacks"]]
        assert fallbacks == ([] if archives == "intact" else [("features", expected[1])])
    for other in set(fmt.KINDS) - {kind}:  # the other kinds are untouched
        assert broken.reader().document(other).source == "latest"  # type: ignore[arg-type]


@pytest.mark.parametrize("archives", ["newest damaged", "absent"])
@pytest.mark.parametrize("how", ["missing", "truncated", "random"])
def test_a_damaged_manifest_with_its_archives(
    broken: Site, client: Client, how: str, archives: str
) -> None:
    gen1, gen2 = broken.generations
    damage(broken, fmt.MANIFEST_KEY, how)
    break_archives(broken, "manifest", archives, how)

    answers = every_route(client, tickers_known=archives != "absent")
    health = answers["/health"]
    if archives == "newest damaged":
        # gen1's archived manifest rules: gen2's documents fail its checksums, so every kind
        # comes from gen1's archives and every chain from gen1's (still stored) documents.
        assert (health["generation"], health["source"]) == (gen1, "archive")
        for path, data in answers.items():
            assert data["generation"] == gen1, path
            assert data["source"] == ("latest" if path.startswith(("/options", "/features"))
                                      else "archive"), path  # fmt: skip
    else:
        # No manifest anywhere: kinds from their newest archives, unverified but flagged;
        # no ticker is known without a manifest.
        assert (health["status"], health["generation"]) == ("empty", None)
        for path in ("/tickers", "/alerts/latest", "/scans/latest"):
            assert (answers[path]["source"], answers[path]["generation"]) == ("archive", gen2)
