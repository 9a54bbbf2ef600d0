"""gzip for response bodies, without compressing the cached part of a body again.

A data body is a fresh head (its metadata: ``age_seconds`` changes with every request) and a
tail cached per document version. A gzip member's deflate stream may be made of independent
pieces: the head is deflated on its own and flushed to a byte boundary (``Z_FULL_FLUSH``), then
the tail's own deflate stream, compressed once and cached, follows; the CRC-32 (computed at C
speed) and the length cover both. So a warm request deflates a hundred bytes, whatever the size
of the body.
"""

from __future__ import annotations

import re
import struct
import zlib

MIN_BYTES = 1024  # smaller bodies are sent as they are: gzip would not pay for itself
LEVEL = 6
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name, no mtime, OS ?
_CODING = re.compile(r"\s*([^\s;,]+)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*")


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``gzip`` or ``*`` with q > 0)."""
    if not header:
        return False
    allowed: dict[str, float] = {}
    for part in header.split(","):
        match = _CODING.fullmatch(part)
        if not match:
            continue
        try:
            q = float(match[2]) if match[2] else 1.0
        except ValueError:
            continue
        allowed[match[1].lower()] = q
    q = allowed.get("gzip", allowed.get("x-gzip", allowed.get("*", 0.0)))
    return q > 0


class Part:
    """Bytes that end a body, with their deflate stream made once, when first needed. (A plain
    class: a dataclass would cost several times more to create at the API's cold start.)"""

    __slots__ = ("_deflated", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._deflated: bytes | None = None

    def deflated(self) -> bytes:
        if self._deflated is None:  # two threads may both compress once: same result
            packer = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
            self._deflated = packer.compress(self.data) + packer.flush(zlib.Z_FINISH)
        return self._deflated


def gzip_body(head: bytes, tail: Part) -> bytes:
    """``head + tail.data`` as one gzip member, ``tail`` deflated once for all requests."""
    packer = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = packer.compress(head) + packer.flush(zlib.Z_FULL_FLUSH)
    rest = tail.deflated()
    crc = zlib.crc32(tail.data, zlib.crc32(head))  # C speed: cheaper than combining CRCs
    size = (len(head) + len(tail.data)) & 0xFFFFFFFF
    return b"".join((_HEADER, first, rest, struct.pack("<II", crc, size)))
