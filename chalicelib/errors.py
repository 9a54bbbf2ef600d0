"""Exceptions of our own, each carrying what went wrong; HTTP mapping lives in read/http.py."""

from __future__ import annotations


class OCDError(Exception):
    """Base class for every error this service raises on purpose."""


class ConfigError(OCDError):
    """An OCD_* variable is missing or invalid; the message names the variable."""


class WriterBusy(OCDError):
    """Another process holds the DuckDB write lock."""

    exit_code = 75  # EX_TEMPFAIL: try again later

    def __init__(self, path: str, holder: str | None) -> None:
        self.path = path
        self.holder = holder
        who = f"held by {holder}" if holder else "held by another process"
        super().__init__(f"writer busy: {path} is {who}")


class InvalidKey(OCDError):
    """A storage key that could escape the export root or uses unsafe characters."""


class ObjectNotFound(OCDError):
    """A storage object does not exist."""


class PreconditionFailed(OCDError):
    """A conditional storage write lost (HTTP 412): another writer got there first."""


class StorageUnavailable(OCDError):
    """The storage backend failed to answer (throttled, erroring, timing out) after retries.

    Unlike ObjectNotFound it says nothing about the object: a reader treats the copy as
    unreadable for now, and does not remember that answer.
    """


class DocumentsUpgrading(OCDError):
    """The published documents are of another export format (an upgrade before its first
    export): the routes cannot read them as data until the next export rewrites them."""


class ExportNotFound(OCDError):
    """No valid export document exists for the request."""


class ExportCorrupt(OCDError):
    """An export document failed to parse or did not match the manifest's checksum."""


class BadRequest(OCDError):
    """A client parameter is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str, details: list[dict[str, str]] | None = None):
        self.field = field
        self.details = details or [{"field": field, "message": message}]
        super().__init__(message)


class NotFound(OCDError):
    """A well-formed request for something that does not exist."""


class ClockRefused(OCDError):
    """A writer run whose clock is behind the newest stored snapshot, or ahead of the wall
    clock: the store's history only moves forward, and never past the present."""

    exit_code = 64  # EX_USAGE: the run was asked for a time it cannot write at


class DatabaseDamaged(OCDError):
    """The DuckDB file does not open, or a block fails its checksum: nothing is written to it,
    nothing persisted from it; ``ocd.py db check`` says how to recover."""

    exit_code = 74  # EX_IOERR

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(
            f"the database {where} is damaged ({reason}); nothing was written. "
            "Run `ocd.py db check` for what is wrong and how to recover"
        )


class DatabaseDiverged(OCDError):
    """The local database and the bucket's both hold data and differ; a person must choose
    (``ocd.py db push`` or ``db pull``)."""

    exit_code = 75
