"""The read service: one reader per export location, the bodies it serves, the health report.

No HTTP here: the Chalice adapter (``http.py``) and ``ocd.py status`` both call it. Every data
body carries ``generation``, ``generated_at``, ``age_seconds`` and ``source`` of what it was
built from; bodies are cached by the version of the documents they came from, so a warm request
serializes nothing (only ``age_seconds`` is spliced in fresh).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError

from chalicelib import logs
from chalicelib.config import ReadSettings
from chalicelib.deliveryformat import SinkStatus
from chalicelib.errors import DocumentsUpgrading, NotFound
from chalicelib.exportformat import DELIVERY_KIND, FORMAT_VERSION, Manifest, MarketClock
from chalicelib.exportstatus import ExportStatus
from chalicelib.read import api
from chalicelib.read import params as p
from chalicelib.read.compression import Part
from chalicelib.read.reader import DEFAULT_CACHE_BYTES, ExportReader, LruCache
from chalicelib.read.routes import Route
from chalicelib.storage.factory import make_storage

# Without a valid API key (when one is configured), /health says only this much.
PUBLIC_HEALTH = ("status", "generation", "generated_at", "age_seconds", "stale_after_seconds")
PUBLIC_MARKET = ("state", "quotes_age_seconds")  # ages only, without the key

_READERS: dict[tuple[str, str, str | None, str, float], ExportReader] = {}
_BODIES = LruCache(max_items=512, max_weight=16 << 20)  # serialized bodies, by bytes
_LOG_LEVEL: list[str] = []


class Body(NamedTuple):  # not a dataclass: see ``reader.Loaded``
    """A serialized JSON body (its fresh metadata, then the part cached per version), what
    identifies its content, and where its data came from."""

    head: bytes
    tail: Part
    version: str
    source: str

    @property
    def data(self) -> bytes:
        return self.head + self.tail.data


def reader_for(settings: ReadSettings) -> ExportReader:
    """One reader per storage location per process, so warm requests share its cache."""
    ttl = settings.manifest_ttl_seconds or 0.0
    key = (settings.storage, str(settings.exports), settings.bucket, settings.prefix, ttl)
    reader = _READERS.get(key)
    if reader is None:
        storage = make_storage(settings)
        reader = ExportReader(storage, manifest_ttl=ttl, max_cached_bytes=cache_budget())
        _READERS[key] = reader
    return reader


def cache_budget() -> int:
    """Bytes of source JSON the document cache may hold: a tenth of a Lambda function's
    memory (parsed objects take 3-4x their JSON), or the reader's default elsewhere."""
    try:
        megabytes = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", ""))
    except ValueError:
        return DEFAULT_CACHE_BYTES
    return max(4 << 20, (megabytes << 20) // 10)


def reset_caches() -> None:
    """Forget every reader, body and derived view: the next request reads the storage as a
    freshly started API would."""
    _READERS.clear()
    _BODIES.clear()
    api._DERIVED.clear()


def configure_logging(settings: ReadSettings) -> None:
    """JSON log lines at the configured level, set up once per level (whichever server runs
    the app: Lambda, ``chalice local``, or the production server)."""
    if [settings.log_level] != _LOG_LEVEL:
        logs.configure(settings.log_level)
        _LOG_LEVEL[:] = [settings.log_level]


def data_body(route: Route, query: p.Params, reader: ExportReader) -> Body:
    """What data route ``route`` answers for ``query``, with its generation metadata."""
    try:
        result = route.handler(reader, query)
    except NotFound:  # an unknown ticker, or one in documents of another format
        upgrading(reader.served())
        raise
    upgrading(reader.served())
    loaded = result.loaded
    version = "|".join(
        (route.name, query.model_dump_json(), loaded.version, *result.extra_versions)
    )
    tail = _BODIES.get(version)
    if tail is None:  # built (when the handler deferred it) and serialized once per version
        data = orjson.dumps(result.build())
        tail = Part(data[1:] if len(data) > 2 else b"")
        _BODIES.put(version, tail, len(data))
    meta = {
        "generation": loaded.generation,
        "generated_at": iso(loaded.generated_at) if loaded.generated_at else None,
        "age_seconds": _age(loaded.generated_at),
        "source": loaded.source,
    }
    raw = orjson.dumps(meta)
    head = raw[:-1] + b"," if tail.data else raw
    return Body(head, tail, version, loaded.source)


def other_format(manifest: Manifest | None) -> str | None:
    """Why ``manifest``'s documents cannot be read as data (another format: an upgrade before
    its first export), or None when they can."""
    if manifest is None or manifest.format_version == FORMAT_VERSION:
        return None
    return (f"documents in format {manifest.format_version}, this reader reads format "
            f"{FORMAT_VERSION} (the next export rewrites them)")  # fmt: skip


def upgrading(manifest: Manifest | None) -> None:
    """Raise DocumentsUpgrading when ``manifest`` names documents of another format: a route
    reading them would answer as if there were no data (an empty list, an unknown ticker)."""
    reason = other_format(manifest)
    if reason is not None:
        raise DocumentsUpgrading(reason)


def health_report(reader: ExportReader, settings: ReadSettings) -> dict[str, Any]:
    """Freshness of the published export (``/health`` and ``ocd.py status``)."""
    manifest = reader.manifest()
    body: dict[str, Any] = {
        "status": "empty",
        "generation": None,
        "generated_at": None,
        "age_seconds": None,
        "source": "none",
        "stale_after_seconds": settings.stale_after_seconds,
        "storage": {"backend": reader.storage.backend, "location": reader.storage.location},
        "exports": {},
    }
    if manifest is not None:
        age = _age(manifest.generated_at)
        assert age is not None
        body.update(
            status="stale" if age > settings.stale_after_seconds else "ok",
            generation=manifest.generation,
            generated_at=iso(manifest.generated_at),
            age_seconds=age,
            source=reader.manifest_source,
            export_duration_ms=manifest.duration_ms,
            storage_writes=manifest.storage_writes,
            documents=len(manifest.documents),
            exports={k: v.model_dump() for k, v in manifest.results.items()},
        )
    body["delivery"] = delivery_status(reader) if manifest is not None else None
    body["last_export"] = last_export(manifest, reader.export_status())
    body["last_collect"] = last_collect(reader.collect_status())
    body["provider"] = manifest.provider if manifest else None
    replay = body["provider"] == "file"  # historic quotes by design: never "due"
    body["market"] = market_state(manifest.market if manifest else None, settings, replay)
    reasons = []
    market = body["market"]
    if body["status"] == "stale":
        reasons.append(f"no export for {body['age_seconds']:.0f} s")
    if market is not None and market["quotes_overdue"]:
        # exports go on, but the quotes in them stopped moving: said here and in
        # market.quotes_overdue; the status stays about the pipeline (exports, failures)
        reasons.append(f"quotes {market['quotes_age_seconds']:.0f} s old while newer are due")
    failing = [
        f"{step} failing: {last['error']}"
        for step, last in (("export", body["last_export"]), ("collect", body["last_collect"]))
        if last and not last["ok"]
    ]
    upgrade = other_format(manifest)
    if upgrade is not None:  # the data routes answer 503 documents_upgrading meanwhile
        failing.append(upgrade)
    if failing and body["status"] == "ok":
        body["status"] = "degraded"  # still served, but the writer is failing
    reasons += failing
    if not reasons and market is not None and market["state"] == "closed":
        reasons.append("market closed")  # between sessions, old quotes are the newest there are
    body["status_reason"] = "; ".join(reasons) or None
    return body


def market_state(
    market: MarketClock | None, settings: ReadSettings, replay: bool = False
) -> dict[str, Any] | None:
    """Whether the published quotes are as new as the market allows, from the writer's market
    clock (the read side needs no calendar): quotes of a session are due until its close;
    between the close and the next open the market is closed and the close is the newest quote
    there can be; after the next open newer quotes are due, and past the next close a whole
    session was missed."""
    if market is None:
        return None
    now = datetime.now(UTC)
    age = _age(market.quotes_as_of)
    assert age is not None
    if now < market.closes_at:
        state, overdue = "open", age > settings.stale_after_seconds
    elif now < market.next_open:
        state, overdue = "closed", False
    elif now < market.next_close:
        overdue_for = (now - market.next_open).total_seconds()
        state, overdue = "open", overdue_for > settings.stale_after_seconds
    else:
        state, overdue = "unknown", True  # a session came and went without a quote
    return {
        "state": state,
        "session": market.session.isoformat(),
        "quotes_as_of": iso(market.quotes_as_of),
        "quotes_age_seconds": age,
        "quotes_overdue": overdue and not replay,
        "closes_at": iso(market.closes_at),
        "next_open": iso(market.next_open),
    }


def last_collect(status: ExportStatus | None) -> dict[str, Any] | None:
    """The writer's last collect, when one ever failed (then also its recovery)."""
    if status is None:
        return None
    return {"ok": status.ok, "at": iso(status.at), "error": status.error}


def delivery_status(reader: ExportReader) -> list[dict[str, Any]] | None:
    """Per configured sink: last success, backlog, dead rows, last error, as the writer
    published them in ``delivery.json``; None when the generation has no such document."""
    sinks = (reader.named(DELIVERY_KIND).doc or {}).get("sinks")
    if not isinstance(sinks, list):
        return None
    try:
        return [SinkStatus.model_validate(s).model_dump(mode="json") for s in sinks]
    except ValidationError:
        return None


def public_health(report: dict[str, Any]) -> dict[str, Any]:
    """The report as anyone may see it: no storage location, no error text, no sizes."""
    public = {name: report[name] for name in PUBLIC_HEALTH}
    market = report.get("market")
    public["market"] = {k: market[k] for k in PUBLIC_MARKET} if market else None
    return public


def last_export(manifest: Manifest | None, status: ExportStatus | None) -> dict[str, Any] | None:
    """The writer's last export: the recorded failure if it is newer than what is published,
    else the published generation (a failure the next publish superseded no longer counts)."""
    superseded = manifest is not None and status is not None and status.at < manifest.generated_at
    if status is not None and not status.ok and not superseded:
        return {"ok": False, "at": iso(status.at), "error": status.error,
                "generation": status.generation}  # fmt: skip
    if manifest is None:
        return None
    return {"ok": True, "at": iso(manifest.generated_at), "error": None,
            "generation": manifest.generation}  # fmt: skip


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _age(when: datetime | None) -> float | None:
    return round((datetime.now(UTC) - when).total_seconds(), 1) if when else None
