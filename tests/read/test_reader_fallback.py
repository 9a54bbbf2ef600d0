"""The export reader's fallback matrix, on both adapters, without HTTP.

The site holds two generations (gen1 from ``db1``, gen2 from ``db2``) whose documents all
differ, so every answer tells which copy was served.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from readkit import DAMAGES, T1, T2, Site, damage, stored_alerts

from chalicelib import exportformat as fmt
from chalicelib.exportformat import iso


def ids(doc: dict | None) -> list[str]:
    return [a["id"] for a in (doc or {}).get("alerts", [])]


def ids_of(db: Path) -> list[str]:
    return [a.id for a in stored_alerts(db)]


def test_intact_site_serves_latest(fresh: Site) -> None:
    gen2 = fresh.generations[1]
    reader = fresh.reader()
    loaded = reader.document("alerts")
    assert (loaded.source, loaded.generation) == ("latest", gen2)
    assert ids(loaded.doc) == ids_of(fresh.stores.db2)
    assert reader.manifest_source == "latest"
    chain = reader.chain("SPY")
    assert chain is not None and chain.source == "latest" and chain.doc["as_of"] == iso(T2)


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_latest_is_served_from_the_same_generation_archive(fresh: Site, how: str) -> None:
    damage(fresh, "alerts.json", how)
    reader = fresh.reader()
    loaded = reader.document("alerts")
    assert (loaded.source, loaded.generation) == ("archive", fresh.generations[1])
    assert ids(loaded.doc) == ids_of(fresh.stores.db2)
    # Warm: still reported as coming from the archive (the cache remembers where it read).
    again = reader.document("alerts")
    assert again.source == "archive" and again.version == loaded.version


@pytest.mark.parametrize("how", ["truncated", "other_content"])
def test_damaged_archive_too_falls_back_to_the_older_generation(fresh: Site, how: str) -> None:
    gen1 = fresh.generations[0]
    damage(fresh, "alerts.json", how)
    damage(fresh, fresh.manifest().archives["alerts"], how)
    loaded = fresh.reader().document("alerts")
    assert (loaded.source, loaded.generation) == ("archive", gen1)
    assert ids(loaded.doc) == ids_of(fresh.stores.db1)
    assert loaded.generated_at == fresh.archived_manifest(gen1).generated_at


@pytest.mark.parametrize("how", ["random", "other_content"])
def test_everything_damaged_gives_an_empty_result(fresh: Site, how: str) -> None:
    damage(fresh, "alerts.json", how)
    for key in fmt.archives_newest_first(fresh.storage, "alerts"):
        damage(fresh, key, how)
    loaded = fresh.reader().document("alerts")
    assert (loaded.doc, loaded.source, loaded.generation) == (None, "none", None)


@pytest.mark.parametrize("how", ["missing", "truncated"])
def test_unreadable_manifest_uses_the_newest_archived_one(fresh: Site, how: str) -> None:
    damage(fresh, fmt.MANIFEST_KEY, how)
    reader = fresh.reader()
    manifest = reader.manifest()
    assert manifest is not None and manifest.generation == fresh.generations[1]
    assert reader.manifest_source == "archive"
    loaded = reader.document("alerts")  # the latest documents still match its checksums
    assert (loaded.source, loaded.generation) == ("latest", fresh.generations[1])


def test_no_manifest_anywhere_serves_the_newest_archive_unverified(fresh: Site) -> None:
    fresh.delete(fmt.MANIFEST_KEY)
    for key in fmt.archives_newest_first(fresh.storage, "manifest"):
        fresh.delete(key)
    reader = fresh.reader()
    assert reader.manifest() is None
    loaded = reader.document("alerts")
    assert (loaded.source, loaded.generation) == ("archive", fresh.generations[1])
    assert ids(loaded.doc) == ids_of(fresh.stores.db2)
    assert reader.chain("SPY") is None  # without a manifest no ticker is known


def test_nothing_at_all(empty_site: Site) -> None:
    reader = empty_site.reader()
    assert reader.manifest() is None
    for kind in fmt.KINDS:
        assert reader.document(kind).source == "none"
    assert reader.chain("SPY") is None


@pytest.mark.parametrize("how", ["missing", "other_content"])
def test_damaged_chain_document_falls_back_to_the_older_generation(fresh: Site, how: str) -> None:
    gen1 = fresh.generations[0]
    manifest = fresh.manifest()
    assert manifest.chains["SPY"] != fresh.archived_manifest(gen1).chains["SPY"]
    damage(fresh, manifest.chains["SPY"], how)
    reader = fresh.reader()
    loaded = reader.chain("SPY")
    assert loaded is not None
    assert (loaded.source, loaded.generation) == ("archive", gen1)
    assert loaded.doc["ticker"] == "SPY" and loaded.doc["as_of"] == iso(T1)
    other = reader.chain("AAPL")  # other tickers are untouched
    assert other is not None and (other.source, other.doc["as_of"]) == ("latest", iso(T2))


@pytest.mark.parametrize("how", ["truncated"])
def test_chain_damaged_in_every_generation_is_empty(fresh: Site, how: str) -> None:
    gen1, _ = fresh.generations
    damage(fresh, fresh.manifest().chains["JPM"], how)
    damage(fresh, fresh.archived_manifest(gen1).chains["JPM"], how)
    loaded = fresh.reader().chain("JPM")
    assert loaded is not None and loaded.source == "none" and loaded.doc is None


def test_export_interrupted_before_its_manifest_serves_the_previous_generation(
    fresh: Site,
) -> None:
    """Publication protocol, step 5: latest documents already replaced, manifest not yet."""
    gen2_manifest = fresh.read(fmt.MANIFEST_KEY)
    fresh.export(fresh.stores.db1)  # gen3 rewrites alerts.json with db1's alerts ...
    fresh.write(fmt.MANIFEST_KEY, gen2_manifest)  # ... but "crashed" before its manifest
    loaded = fresh.reader().document("alerts")
    assert (loaded.source, loaded.generation) == ("archive", fresh.generations[1])
    assert ids(loaded.doc) == ids_of(fresh.stores.db2)


def test_archive_listing_ignores_foreign_and_misnamed_objects(fresh: Site) -> None:
    fresh.write("archive/alerts_latest.json.gz", b"not an archive")
    fresh.write("archive/alerts_29991231_235959.json", b"{}")
    damage(fresh, "alerts.json", "random")
    damage(fresh, fresh.manifest().archives["alerts"], "random")
    loaded = fresh.reader().document("alerts")
    assert (loaded.source, loaded.generation) == ("archive", fresh.generations[0])


def test_documents_read_under_a_pinned_manifest_stay_in_its_generation(fresh: Site) -> None:
    """A composed answer pins the manifest: the writer publishing between its reads does not
    put two generations side by side (issue 15, finding 5)."""
    gen2 = fresh.generations[1]
    reader = fresh.reader()
    at = reader.pin()
    assert reader.document("chains", at).generation == gen2  # read before the publish
    fresh.export(fresh.stores.db1)  # generation 3 replaces the latest documents, then the manifest
    gen3 = fresh.generations[2]
    features = reader.document("features", at)
    alerts = reader.document("alerts", at)
    assert (features.generation, alerts.generation) == (gen2, gen2)
    assert features.source == alerts.source == "archive"  # gen2's bytes, from its archives
    assert reader.document("features").generation == gen3  # unpinned: the new manifest
