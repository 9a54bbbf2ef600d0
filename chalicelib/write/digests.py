"""Checksums of large files, read once in 1 MiB blocks (databases, sealed partitions)."""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 20


def file_digests(path: Path) -> tuple[str, str]:
    """(md5, sha256) of a file in one read: S3's single-part ETag is the first."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(BLOCK):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(BLOCK):
            digest.update(chunk)
    return digest.hexdigest()
