"""The Telegram bot's queries: invite codes, linked chats, server-side buttons, seen updates.

A mixin of the store's transaction, kept apart so `store.py` stays about the incident flow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from playbook.ports import ButtonRow, InviteRow, LinkRow
from playbook.tables import buttons, invites, links, updates


class ChatRecords:
    """What the bot keeps between updates; every write is part of the caller's transaction."""

    conn: Connection
    pg: bool

    def _upsert(self, table: sa.Table) -> Any:
        return postgresql.insert(table) if self.pg else sqlite.insert(table)

    def add_invite(self, invite: InviteRow) -> None:
        self.conn.execute(invites.insert().values(**dataclasses.asdict(invite)))

    def invite(self, code: str) -> InviteRow | None:
        found = self.conn.execute(invites.select().where(invites.c.code == code)).first()
        return InviteRow(**found._mapping) if found is not None else None

    def use_invite(self, code: str, chat_id: str, at: datetime) -> bool:
        # One UPDATE decides: two people racing with the same code cannot both win.
        result = self.conn.execute(invites.update().where(
            invites.c.code == code, invites.c.used_at.is_(None),
            invites.c.expires_at > at).values(used_at=at, chat_id=chat_id))
        return result.rowcount == 1

    def set_link(self, link: LinkRow) -> None:
        values = dataclasses.asdict(link)
        statement = self._upsert(links).values(**values)
        self.conn.execute(statement.on_conflict_do_update(
            index_elements=["person_id"],
            set_={k: v for k, v in values.items() if k != "person_id"}))

    def links(self) -> list[LinkRow]:
        query = links.select().order_by(links.c.person_id)
        return [LinkRow(**r._mapping) for r in self.conn.execute(query)]

    def add_buttons(self, rows: Iterable[ButtonRow]) -> None:
        values = [{**dataclasses.asdict(b), "payload": dict(b.payload)} for b in rows]
        if values:
            self.conn.execute(buttons.insert(), values)

    def button(self, token: str) -> ButtonRow | None:
        found = self.conn.execute(buttons.select().where(buttons.c.token == token)).first()
        return ButtonRow(**found._mapping) if found is not None else None

    def use_button(self, token: str, at: datetime) -> bool:
        result = self.conn.execute(buttons.update().where(
            buttons.c.token == token, buttons.c.used_at.is_(None)).values(used_at=at))
        return result.rowcount == 1

    def first_sight(self, update_id: int, at: datetime) -> bool:
        result = self.conn.execute(self._upsert(updates).values(
            update_id=update_id, seen_at=at).on_conflict_do_nothing(
                index_elements=["update_id"]).returning(updates.c.update_id))
        return result.first() is not None
