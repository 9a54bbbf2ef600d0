"""Standard Webhooks signatures (the ``standardwebhooks`` package, as receivers verify them).

``webhook-signature`` is ``v1,<base64 HMAC-SHA256>`` over ``id.timestamp.body`` with the
``whsec_…`` secret. The timestamp is the wall clock at sending, not the writer's (possibly
pinned) clock: receivers reject a timestamp more than five minutes from their own.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from standardwebhooks import Webhook


def signed_headers(secret: str, msg_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` sent at ``at``."""
    at = at.astimezone(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }
