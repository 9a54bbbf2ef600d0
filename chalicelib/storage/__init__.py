"""Storage port (local disk or S3) for export documents; see ``base.Storage``."""

from chalicelib.storage.base import ObjectInfo, Storage, StoredObject
from chalicelib.storage.factory import make_storage
from chalicelib.storage.keys import validate_key, validate_prefix
from chalicelib.storage.local import LocalStorage
from chalicelib.storage.s3 import S3Storage

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
