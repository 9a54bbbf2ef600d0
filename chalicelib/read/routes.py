"""The data routes: path, parameters, handler and summary of each, in one table; and the
routes that serve a published document as it is stored (the Atom feed), in another.

The Chalice adapter (``http.py``) serves it, the OpenAPI document (``openapi.py``) describes it,
and ``app.py`` declares it; none of them imports another for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from chalicelib.read import api, feed
from chalicelib.read import params as p
from chalicelib.read.reader import ExportReader, Loaded


class Route(NamedTuple):  # not a dataclass: see ``reader.Loaded``
    name: str
    path: str
    params: type[p.Params]
    handler: Callable[..., api.Result]
    summary: str

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"{(\w+)}", self.path))


ROUTES: dict[str, Route] = {
    r.name: r
    for r in (
        Route("scans_latest", "/scans/latest", p.ScansParams, api.scans_latest,
              "Recent scans, newest first"),
        Route("alerts_latest", "/alerts/latest", p.AlertsLatestParams, api.alerts_latest,
              "Latest alerts, newest first"),
        Route("alerts_summary", "/alerts/latest/summary", p.AlertsSummaryParams,
              api.alerts_summary, "Latest alerts, short form"),
        Route("alerts_query", "/alerts", p.AlertsQueryParams, api.alerts_query,
              "Alerts filtered by ticker, detector and score"),
        Route("alerts_ticker", "/alerts/ticker/{ticker}", p.TickerAlertsParams,
              api.alerts_for_ticker, "Alerts of one ticker"),
        Route("expirations", "/options/{ticker}/expirations", p.TickerParams, api.expirations,
              "Listed expirations of a ticker"),
        Route("snapshot", "/options/{ticker}/snapshot", p.SnapshotParams, api.snapshot,
              "Option chain of one expiration (calls and puts)"),
        Route("history", "/options/{ticker}/history", p.HistoryParams, api.history,
              "Daily summary history of a ticker"),
        Route("features", "/features/{ticker}/latest", p.TickerParams, api.features,
              "Latest computed features of a ticker"),
        Route("tickers", "/tickers", p.NoParams, api.tickers,
              "The watchlist with last price, ATM IV, IV rank and alert count"),
    )
}  # fmt: skip


class DocumentRoute(NamedTuple):
    """A route answering with one published document's verified bytes, in its media type."""

    name: str
    path: str
    media_type: str
    handler: Callable[[ExportReader], tuple[bytes, Loaded]]
    summary: str
    params: type[p.Params] = p.NoParams


DOCUMENT_ROUTES: dict[str, DocumentRoute] = {
    r.name: r
    for r in (
        DocumentRoute("alerts_feed", "/alerts/feed", feed.MEDIA_TYPE, feed.alerts_feed,
                      "Atom feed of the newest 100 alerts", p.FeedParams),
    )
}  # fmt: skip
