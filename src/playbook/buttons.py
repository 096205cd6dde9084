"""Inline buttons kept on the server: a button carries only a random token.

What a button does and who may press it is a row in the store, so the callback data stays
far under Telegram's 64 bytes, and a forged, guessed, expired or borrowed button matches
nothing and changes nothing. Buttons that decide something (approve, stand down, activate)
work once; a second tap is answered and ignored.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from playbook.delivery import Delivery
from playbook.phrases import new_code
from playbook.ports import ButtonRow, Tx

PREFIX = "b:"
TTL = timedelta(days=3)
"""How long a button works: an incident's first days; old messages' buttons then go quiet."""
_LENGTH = 12  # 60 bits


def new_token() -> str:
    """An unguessable button token."""
    return new_code(_LENGTH)


def make(tx: Tx, owner: str, action: str, payload: Mapping[str, Any], now: datetime,
         ttl: timedelta = TTL) -> str:
    """Store what a button does for `owner`; returns its callback data."""
    token = new_token()
    tx.add_buttons([ButtonRow(token, owner, action, dict(payload), now, now + ttl)])
    return PREFIX + token


def attach(delivery: Delivery, rows: Sequence[Sequence[tuple[str, str]]]) -> Delivery:
    """The delivery with (label, callback data) buttons under its last part."""
    meta = {**delivery.meta, "buttons": json.dumps([[list(b) for b in row] for row in rows])}
    return dataclasses.replace(delivery, meta=meta)


def press(tx: Tx, data: str, presser: str, now: datetime, *,
          once: frozenset[str] = frozenset()) -> ButtonRow | None:
    """The button behind callback `data` if `presser` may press it now, else None.

    Actions in `once` are used up by the first press that gets here.
    """
    if not data.startswith(PREFIX) or len(data) != len(PREFIX) + _LENGTH:
        return None
    row = tx.button(data[len(PREFIX):])
    if row is None or row.owner != presser or row.expires_at <= now:
        return None
    if row.action in once and not tx.use_button(row.token, now):
        return None
    return row
