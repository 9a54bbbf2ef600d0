"""A hostile or broken export root: keys outside it, symlinks out of it, unreadable files.

Each is damage like any other (issue 15, finding 3): the reader falls back to a copy it can
verify and answers 503 only when nothing can be read; never a 500, and never a byte read from
outside the root. The chmod cases run as an unprivileged user when the suite runs as root
(root reads a mode-000 file regardless).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from chalice.test import Client
from readkit import Site, Snapshot, activate, body, get, site_env

from chalicelib import exportformat as fmt

NOBODY = 65534
OUTSIDE_KEYS = ("../outside.json", "chains/SPY/../../../../etc/passwd", "/etc/passwd")


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """File modes apply inside: as ``nobody`` when running as root, else as we are."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def open_site(local_published: Site, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """A private local copy of the two-generation site in a directory anyone may enter, served
    by the app (so the unprivileged user meets only the modes a test sets)."""
    home = Path(tempfile.mkdtemp(prefix="ocd-hostile-"))
    try:
        home.chmod(0o755)
        shutil.copytree(local_published.settings.exports, home / "data" / "exports")
        for path in [home / "data", *(home / "data").rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        site = Site("local", site_env("local", home / "data"), local_published.stores,
                    list(local_published.generations))  # fmt: skip
        activate(site, monkeypatch)
        yield site
    finally:
        for path in [home, *home.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(home)


def rewrite_manifest(site: Site, change: dict) -> None:
    doc = orjson.loads(site.read(fmt.MANIFEST_KEY))
    for field, values in change.items():
        doc[field].update(values)
    site.write(fmt.MANIFEST_KEY, orjson.dumps(doc))


def served_from(client: Client, path: str) -> tuple[int, str | None, str | None]:
    response = get(client, path)
    data = body(response)
    return response.status_code, data.get("source"), data.get("generation")


@pytest.mark.parametrize("bad", OUTSIDE_KEYS)
def test_a_manifest_naming_a_chain_outside_the_root_falls_back(
    fresh: Site, client: Client, bad: str
) -> None:
    manifest = fresh.manifest()
    entry = manifest.documents[manifest.chains["SPY"]].model_dump()
    rewrite_manifest(fresh, {"chains": {"SPY": bad}, "documents": {bad: entry}})
    status, source, generation = served_from(client, "/options/SPY/snapshot")
    assert (status, source) == (200, "archive")  # the archived manifest's own copy
    assert generation == fresh.generations[1]
    assert get(client, "/tickers").status_code == 200


@pytest.mark.parametrize("bad", OUTSIDE_KEYS)
def test_a_manifest_naming_an_archive_outside_the_root_falls_back(
    fresh: Site, client: Client, bad: str
) -> None:
    rewrite_manifest(fresh, {"archives": {"alerts": bad}})
    fresh.delete("alerts.json")
    status, source, _ = served_from(client, "/alerts/latest")
    assert (status, source) == (200, "archive")


def test_a_symlinked_manifest_leading_out_of_the_root_is_not_followed(
    open_site: Site, client: Client
) -> None:
    """Outside sits a valid manifest of generation 1: following the link would serve it."""
    gen1, gen2 = open_site.generations
    outside = open_site.settings.data_dir / "planted-manifest.json"
    outside.write_bytes(open_site.archived_manifest(gen1).model_dump_json().encode())
    link = open_site.settings.exports / fmt.MANIFEST_KEY
    link.unlink()
    link.symlink_to(outside)
    status, source, generation = served_from(client, "/health")
    assert (status, source, generation) == (200, "archive", gen2)
    status, _, generation = served_from(client, "/alerts/latest")
    assert (status, generation) == (200, gen2)


def test_a_symlinked_latest_document_leading_out_of_the_root_is_not_followed(
    open_site: Site, client: Client
) -> None:
    """Outside sits the very bytes the manifest vouches for: only "archive" shows the link
    was not followed."""
    outside = open_site.settings.data_dir / "alerts-copy.json"
    link = open_site.settings.exports / "alerts.json"
    shutil.copyfile(link, outside)
    link.unlink()
    link.symlink_to(outside)
    status, source, generation = served_from(client, "/alerts/latest")
    assert (status, source, generation) == (200, "archive", open_site.generations[1])


def test_an_unreadable_manifest_falls_back_to_the_archived_one(
    open_site: Site, client: Client
) -> None:
    (open_site.settings.exports / fmt.MANIFEST_KEY).chmod(0)
    with unprivileged():
        status, source, generation = served_from(client, "/health")
        tickers = get(client, "/tickers")
    assert (status, source, generation) == (200, "archive", open_site.generations[1])
    assert tickers.status_code == 200


def test_an_unreadable_latest_document_falls_back_to_its_archive(
    open_site: Site, client: Client
) -> None:
    (open_site.settings.exports / "alerts.json").chmod(0)
    with unprivileged():
        status, source, generation = served_from(client, "/alerts/latest")
    assert (status, source, generation) == (200, "archive", open_site.generations[1])


def test_an_unreadable_export_root_is_503_then_served_again_once_readable(
    open_site: Site, client: Client
) -> None:
    root = open_site.settings.exports
    root.chmod(0)
    with unprivileged():
        answers = [get(client, path) for path in ("/health", "/tickers", "/options/SPY/snapshot")]
    for response in answers:
        assert response.status_code == 503, response.body[:200]
        assert body(response)["error"] == "storage_unavailable"
        assert str(root) not in response.body.decode()
    root.chmod(0o755)
    with unprivileged():
        assert served_from(client, "/tickers")[:2] == (200, "latest")  # nothing was remembered


def test_an_export_root_turning_unreadable_keeps_serving_what_was_read(
    open_site: Site, client: Client
) -> None:
    with unprivileged():
        before = body(get(client, "/tickers"))
    (open_site.settings.exports).chmod(stat.S_IXUSR)  # entered by its owner only
    with unprivileged():
        after = get(client, "/tickers")
    assert after.status_code == 200
    assert body(after)["generation"] == before["generation"]


def test_the_export_is_left_as_found(open_site: Site, template: Snapshot) -> None:
    """The fixture's copy is the published site, byte for byte (the tests above damage it)."""
    assert open_site.snapshot().data == template.data
