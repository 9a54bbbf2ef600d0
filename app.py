"""Chalice entry point: routes and schedules only; all logic lives in chalicelib."""

from __future__ import annotations

from typing import Any

from chalice import Chalice, Rate
from chalice.app import CloudWatchEvent

from chalicelib import schedules

app = Chalice(app_name="option-chain-dashboard")


@app.schedule(
    Rate(schedules.rate_minutes("OCD_COLLECT_INTERVAL_SECONDS", 300), unit=Rate.MINUTES),
    name="collect",
)
def collect(event: CloudWatchEvent) -> dict[str, Any]:
    return schedules.collect(event.detail)


@app.schedule(
    Rate(schedules.rate_minutes("OCD_EXPORT_INTERVAL_SECONDS", 300), unit=Rate.MINUTES),
    name="export",
)
def export(event: CloudWatchEvent) -> dict[str, Any]:
    return schedules.export(event.detail)
