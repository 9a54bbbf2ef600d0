"""Storage port (local disk or S3) for export documents; see ``base.Storage``.

``S3Storage`` is imported on first use: boto3 takes longer to import than the rest of the API
together, and a process on local disk never needs it.
"""

from typing import Any

from chalicelib.storage.base import ObjectInfo, Storage, StoredObject
from chalicelib.storage.factory import make_storage
from chalicelib.storage.keys import validate_key, validate_prefix
from chalicelib.storage.local import LocalStorage


def __getattr__(name: str) -> Any:
    if name == "S3Storage":
        from chalicelib.storage.s3 import S3Storage

        return S3Storage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LocalStorage",
    "ObjectInfo",
    "S3Storage",
    "Storage",
    "StoredObject",
    "make_storage",
    "validate_key",
    "validate_prefix",
]
