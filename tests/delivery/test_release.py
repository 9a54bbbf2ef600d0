"""Which alerts the served generation releases for delivery, now that an export keeps the latest
documents whose content did not change: the delivery status is rebuilt by every export, and it
releases its alerts only when the same export also published the alerts and the feed (rebuilt or
kept), never when one of them failed and left an older document in place."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from deliverykit import T0, add_alerts, candidates, publish

from chalicelib import exportformat as fmt
from chalicelib.config import Settings
from chalicelib.storage.local import LocalStorage
from chalicelib.write.delivery.release import published_release
from chalicelib.write.exporter import JSONExporter
from chalicelib.write.store import Store


class RefusingArchives(LocalStorage):
    """The real local adapter, refusing to write one kind's archives (a storage fault)."""

    def __init__(self, root: Path, kind: str) -> None:
        super().__init__(root)
        self.kind = kind

    def _put(self, key: str, data: bytes, **kwargs: object) -> object:  # type: ignore[override]
        if key.startswith(f"{fmt.ARCHIVE_PREFIX}{self.kind}_"):
            raise OSError(f"injected fault writing {key}")
        return super()._put(key, data, **kwargs)  # type: ignore[arg-type]


def test_an_export_with_nothing_new_keeps_the_alerts_and_still_releases_them(
    settings: Settings, store: Store
) -> None:
    alerts = add_alerts(store, settings, candidates(2))
    first = publish(store, settings)
    release = published_release(LocalStorage(settings.export_dir))
    assert release is not None
    assert (release.generation, release.awaiting) == (first.generation, frozenset(alerts))

    second = publish(store, settings)  # nothing new: alerts and feed kept, status rebuilt
    for key in (fmt.latest_key("alerts"), fmt.FEED_KEY):
        assert second.documents[key].generation == first.generation
    assert second.documents[fmt.DELIVERY_KEY].generation == second.generation
    release = published_release(LocalStorage(settings.export_dir))
    assert release is not None
    assert (release.generation, release.awaiting) == (second.generation, frozenset(alerts))


def test_an_export_whose_alerts_failed_releases_nothing(settings: Settings, store: Store) -> None:
    first_alerts = add_alerts(store, settings, candidates(1))
    publish(store, settings)
    # A newer alert, and an export whose alerts document cannot be written: its delivery
    # status lists the new alert, which the published alerts.json (the older one) lacks.
    add_alerts(store, settings, candidates(2, as_of=T0 + timedelta(minutes=5))[1:])
    storage = RefusingArchives(settings.export_dir, "alerts")
    results = JSONExporter(store, storage, settings).export_all()
    assert not results["alerts"].ok and results[fmt.DELIVERY_KIND].ok
    manifest = fmt.load_manifest(storage)
    assert manifest is not None
    assert manifest.documents[fmt.DELIVERY_KEY].generation == manifest.generation
    assert published_release(storage) is None  # nothing goes out until an export succeeds

    publish(store, settings)
    release = published_release(LocalStorage(settings.export_dir))
    assert release is not None and set(first_alerts) < release.awaiting
