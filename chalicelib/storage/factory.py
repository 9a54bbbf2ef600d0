"""The one place a storage adapter is chosen, from configuration. The S3 adapter (and boto3
with it) is imported only when it is chosen."""

from __future__ import annotations

from chalicelib.config import ReadSettings, Settings
from chalicelib.errors import ConfigError
from chalicelib.storage.base import Storage
from chalicelib.storage.local import LocalStorage


def make_storage(settings: ReadSettings) -> Storage:
    """The adapter ``OCD_STORAGE`` names; no client or directory is created yet."""
    if settings.storage == "local":
        return LocalStorage(settings.exports)
    if settings.storage == "s3":
        if not settings.bucket:
            raise ConfigError("OCD_BUCKET: required when OCD_STORAGE=s3")
        from chalicelib.storage.s3 import S3Storage

        return S3Storage(settings.bucket, settings.prefix)
    raise ConfigError(f"OCD_STORAGE: unknown backend {settings.storage!r}")


def make_state_storage(settings: Settings) -> Storage:
    """Where the writer keeps its database between Lambda runs (S3 only)."""
    if not settings.bucket:
        raise ConfigError("OCD_BUCKET: required to persist the database")
    from chalicelib.storage.s3 import S3Storage

    return S3Storage(settings.bucket, settings.state_prefix)
