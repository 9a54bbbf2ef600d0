"""Storage key rules: the one place a key or a list prefix is checked.

Keys are relative POSIX-style paths (``chains/SPY/2026-05-01.json.gz``). The rules are the
intersection of what is safe as a file path under the export root and as an S3 key, so the two
adapters accept exactly the same keys and a key can never climb out of the root.
"""

from __future__ import annotations

import re

from chalicelib.errors import InvalidKey

MAX_KEY_LENGTH = 512
_ALLOWED = re.compile(r"[A-Za-z0-9._=/-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Segments of allowed characters that do not start with a dot (so none is '.', '..', a temp
# file's name or the lock's), joined by single slashes.
_PLAIN = re.compile(r"[A-Za-z0-9_=-][A-Za-z0-9._=-]*(?:/[A-Za-z0-9_=-][A-Za-z0-9._=-]*)*")
# Names the local adapter uses for its own bookkeeping; reserved on every backend so that the
# contract is the same everywhere.
LOCK_NAME = ".lock"
TEMP_PREFIX = ".tmp-"


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it names an object safely; raise InvalidKey otherwise."""
    if isinstance(key, str) and len(key) <= MAX_KEY_LENGTH and _PLAIN.fullmatch(key):
        return key  # the common shape, which every rule below accepts: one match, not eight
    if not isinstance(key, str):
        raise InvalidKey(f"storage key must be a string, not {type(key).__name__}")
    if not key:
        raise InvalidKey("storage key must not be empty")
    _check_text(key, "storage key")
    segments = key.split("/")
    _check_segments(key, segments, "storage key")
    if key == LOCK_NAME:
        raise InvalidKey(f"storage key {key!r} is reserved")
    return key


def is_valid_key(key: str) -> bool:
    """Whether ``validate_key`` accepts ``key``; for skipping foreign names found by a listing."""
    try:
        validate_key(key)
    except InvalidKey:
        return False
    return True


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` unchanged if it is a safe list prefix ('' lists everything).

    A prefix follows the key rules, except that it may be empty or end with '/'.
    """
    if not isinstance(prefix, str):
        raise InvalidKey(f"storage prefix must be a string, not {type(prefix).__name__}")
    if not prefix:
        return prefix
    _check_text(prefix, "storage prefix")
    segments = prefix.split("/")
    if segments[-1] == "":
        segments.pop()  # the trailing '/'
    _check_segments(prefix, segments, "storage prefix")
    return prefix


def _check_text(value: str, what: str) -> None:
    if len(value) > MAX_KEY_LENGTH:
        raise InvalidKey(f"{what} is {len(value)} characters long; the limit is {MAX_KEY_LENGTH}")
    if _CONTROL.search(value):
        raise InvalidKey(f"{what} {value!r} contains a control character")
    if "\\" in value:
        raise InvalidKey(f"{what} {value!r} contains a backslash; use '/' between segments")
    if value.startswith("/"):
        raise InvalidKey(f"{what} {value!r} must be relative (no leading '/')")
    if not _ALLOWED.fullmatch(value):
        bad = sorted({c for c in value if not _ALLOWED.fullmatch(c)})
        raise InvalidKey(
            f"{what} {value!r} contains {''.join(bad)!r}; allowed are A-Z a-z 0-9 . _ = / -"
        )


def _check_segments(value: str, segments: list[str], what: str) -> None:
    for segment in segments:
        if segment in ("", ".", ".."):
            raise InvalidKey(f"{what} {value!r} has an empty, '.' or '..' segment")
        if segment.startswith(TEMP_PREFIX):
            raise InvalidKey(f"{what} {value!r}: names starting {TEMP_PREFIX!r} are reserved")
