"""A fake Telegram Bot API server on 127.0.0.1 that speaks the real HTTP protocol.

Tests (and cities checking their setup) point the real python-telegram-bot client at it:
`Bot(token, base_url=api.base_url)`. It answers as Telegram does (status codes, error
descriptions, `retry_after`), enforces Telegram's flood limits on an injectable clock, records
every accepted message and document, and injects faults (500s, timeouts, dropped connections,
429s) on request or at random with a seed. Updates are offered to `getUpdates`, or, while a
webhook is set, posted to it in order by a background thread and retried until it answers 2xx,
as Telegram does. The HTTP plumbing lives in `fake_telegram_http`. Standard library only.
"""

from __future__ import annotations

import html
import json
import math
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from playbook.fake_telegram_http import JSON, Poster, Server, Upload, error

FAULT_KINDS = ("500", "429", "timeout", "timeout_after_accept", "drop")
"""`timeout_after_accept` records the message and then never answers: how duplicates arise."""
CHAT_KINDS = ("private", "group", "supergroup", "channel")
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_UPLOAD = 50 * 1024 * 1024
"""Bytes a bot may upload as one document."""


@dataclass(frozen=True)
class FaultPlan:
    """Random faults: each request to one of `methods` fails with probability `rate`."""

    rate: float
    kinds: tuple[str, ...] = ("500", "timeout", "drop", "429")
    seed: int | None = None
    methods: frozenset[str] = frozenset({"sendMessage"})

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0 or not self.kinds or set(self.kinds) - set(FAULT_KINDS):
            raise ValueError(f"rate must be within 0..1 and kinds among {FAULT_KINDS}")


@dataclass(frozen=True)
class Sent:
    """One message the fake accepted (or one edit of it)."""

    chat_id: int
    message_id: int
    text: str
    """As the client sent it, markup included."""
    parse_mode: str | None
    reply_markup: JSON | None
    time: float
    """The injected clock's reading when it was accepted."""
    params: JSON = field(default_factory=dict)
    """Every parameter of the request, as received."""


@dataclass(frozen=True)
class Document:
    """One document the fake accepted."""

    chat_id: int
    message_id: int
    filename: str
    caption: str
    """As the client sent it, markup included."""
    parse_mode: str | None
    data: bytes
    mime_type: str
    time: float
    params: JSON = field(default_factory=dict)


@dataclass
class Stats:
    """Counters; `api.stats` returns a snapshot."""

    requests: int = 0
    accepted: int = 0
    """Messages and documents."""
    rate_limited: int = 0
    """Every 429 answered, flood limits and injected ones alike."""
    duplicates: int = 0
    """Accepted messages whose chat and text were already accepted once."""
    faults: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    webhook_posts: int = 0
    """Updates posted to the webhook, failed attempts included."""
    webhook_errors: int = 0
    """Posts answered other than 2xx, or not answered."""


@dataclass
class _Chat:
    id: int
    kind: str
    username: str | None = None
    blocked: bool = False

    def as_json(self) -> JSON:
        if self.kind == "private":
            return {"id": self.id, "type": "private", "first_name": f"User {self.id}"}
        chat: JSON = {"id": self.id, "type": self.kind, "title": f"Chat {self.id}"}
        return chat | ({"username": self.username} if self.username else {})


class _Refused(Exception):
    """One Bot API error answer."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after

    def as_json(self) -> JSON:
        body = error(self.code, self.description)
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _too_many(wait: float) -> _Refused:
    seconds = max(1, math.ceil(wait))
    return _Refused(429, f"Too Many Requests: retry after {seconds}", seconds)


class FakeBotApi:
    """The fake server; `with FakeBotApi() as api:` serves on an ephemeral loopback port.

    `sent`, `edits`, `documents` and `answers` record what was accepted, in order; `stats`
    counts. Webhook posts wait `webhook_timeout` seconds for an answer and are retried after
    `webhook_retry` seconds, doubling up to 2 s (real time, not `clock`: they are about the
    city's server, not about flood limits).
    """

    def __init__(self, token: str = "123456:TEST", *, enforce_limits: bool = True,
                 strict_chats: bool = False, clock: Callable[[], float] = time.monotonic,
                 faults: FaultPlan | None = None, hold: float = 30.0, tolerance: float = 0.05,
                 username: str = "playbook_test_bot", webhook_timeout: float = 5.0,
                 webhook_retry: float = 0.05, latency: float = 0.0) -> None:
        self.token, self.enforce_limits, self.strict_chats = token, enforce_limits, strict_chats
        self.latency = latency
        """Seconds each request takes before it is answered, as across a real network."""
        self.clock, self.faults, self.tolerance = clock, faults, tolerance
        self.hold = hold
        """Seconds a timeout fault holds the request (longer than any client waits)."""
        self.webhook_retry = webhook_retry
        self.me: JSON = {"id": int(token.split(":")[0]) if token[:1].isdigit() else 1,
                         "is_bot": True, "first_name": "Playbook Test", "username": username,
                         "can_join_groups": True, "can_read_all_group_messages": False,
                         "supports_inline_queries": False}
        self.sent: list[Sent] = []
        self.edits: list[Sent] = []
        self.documents: list[Document] = []
        self.answers: list[JSON] = []
        self.commands: list[JSON] = []
        self.webhook = ""
        """The webhook's URL; empty while updates wait for getUpdates."""
        self.stopping = threading.Event()
        self._lock = threading.Condition(threading.RLock())
        self._rng = random.Random(faults.seed if faults else None)
        self._scripted: dict[str, deque[str]] = {}
        self._stats = Stats()
        self._seen: set[tuple[int, str]] = set()
        self._chats: dict[int | str, _Chat] = {}
        self._messages: dict[tuple[int, int], JSON] = {}
        self._last_id: Counter[int] = Counter()
        self._updates: deque[JSON] = deque()
        self._next_update = 1
        self._queries: dict[str, JSON] = {}
        self._recent: deque[float] = deque()
        self._per_chat: dict[int, deque[float]] = {}
        self._files: dict[str, Upload] = {}
        self._hook: JSON = {}
        """The webhook's secret_token and allowed_updates."""
        self._hook_version = 0
        self._hook_error: tuple[int, str] | None = None
        self._hook_failures = 0
        self._hook_retry_at = 0.0
        self._poster = Poster(webhook_timeout)
        self._server: Server | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> FakeBotApi:
        """Listen on 127.0.0.1 on a free port and serve from a background thread."""
        self._server = Server(self)
        self._threads = [
            threading.Thread(target=self._server.serve_forever, args=(0.05,),
                             name="fake-telegram", daemon=True),
            threading.Thread(target=self._deliver, name="fake-telegram-webhook", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        """Stop serving: release held and long-polling requests, close every connection."""
        if self._server is None:
            return
        self.stopping.set()
        with self._lock:
            self._lock.notify_all()
        self._poster.abort()
        self._server.shutdown()
        self._server.drop_connections()
        self._server.server_close()  # joins the handler threads, all released by now
        for thread in self._threads:
            # Bounded: a post may be stuck resolving a host name, which nothing interrupts.
            thread.join(self._poster.timeout + 1.0)
        self._server = None

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        """What to pass as PTB's `Bot(base_url=...)`: `http://127.0.0.1:PORT/bot`."""
        if self._server is None:
            raise RuntimeError("FakeBotApi is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/bot"

    @property
    def stats(self) -> Stats:
        """A snapshot of the counters."""
        with self._lock:
            s = self._stats
            return replace(s, faults=Counter(s.faults), calls=Counter(s.calls))

    # ----- scripting -------------------------------------------------------------------------
    def add_chat(self, chat_id: int | str, kind: str = "private") -> None:
        """Make a chat known (needed with `strict_chats=True`); `@name` ids are channels."""
        if kind not in CHAT_KINDS:
            raise ValueError(f"kind must be one of {CHAT_KINDS}")
        with self._lock:
            self._known(chat_id).kind = kind

    def block(self, chat_id: int | str) -> None:
        """The user blocks the bot (or the group removes it): sends get 403 from now on."""
        with self._lock:
            self._known(chat_id).blocked = True

    def fail_next(self, kind: str, count: int = 1, *, method: str = "sendMessage") -> None:
        """The next `count` calls of `method` fail with fault `kind` (see FAULT_KINDS)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")
        with self._lock:
            self._scripted.setdefault(method, deque()).extend([kind] * count)

    def push_update(self, update: JSON) -> JSON:
        """Queue an update for getUpdates; an `update_id` is assigned if missing."""
        with self._lock:
            update = {"update_id": self._next_update, **update}
            self._next_update = max(self._next_update, int(update["update_id"])) + 1
            self._updates.append(update)
            self._lock.notify_all()
            return update

    def push_message(self, chat_id: int | str, text: str, *, user_id: int | None = None,
                     first_name: str = "Tester", username: str | None = None,
                     reply_to: int | None = None, language_code: str | None = None) -> JSON:
        """A user writes `text` in a chat, perhaps replying to the bot's message `reply_to`.

        A leading `/command` gets its bot_command entity, as Telegram sends it.
        """
        with self._lock:
            chat = self._known(chat_id)
            user: JSON = {"id": user_id or (chat.id if chat.kind == "private" else 1000),
                          "is_bot": False, "first_name": first_name}
            message: JSON = {"message_id": self._new_id(chat), "date": int(time.time()),
                             "chat": chat.as_json(), "text": text,
                             "from": user | ({"username": username} if username else {})
                             | ({"language_code": language_code} if language_code else {})}
            replied = self._messages.get((chat.id, reply_to)) if reply_to else None
            if replied is not None:
                message["reply_to_message"] = replied
            command = re.match(r"/\S+", text)
            if command:
                message["entities"] = [{"type": "bot_command", "offset": 0,
                                        "length": _units(command.group())}]
            return self.push_update({"message": message})

    def push_callback_query(self, chat_id: int | str, data: str, *, message_id: int | None = None,
                            user_id: int | None = None, first_name: str = "Tester") -> JSON:
        """A user presses an inline button on a bot message (by default the chat's latest)."""
        with self._lock:
            chat = self._known(chat_id)
            ids = [m for c, m in self._messages if c == chat.id]
            message = self._messages.get((chat.id, message_id or max(ids, default=0))) or {
                "message_id": message_id or self._new_id(chat), "date": int(time.time()),
                "chat": chat.as_json(), "from": self.me, "text": "(message)"}
            query = {"id": f"q{self._next_update}", "chat_instance": str(chat.id),
                     "from": {"id": user_id or chat.id, "is_bot": False,
                              "first_name": first_name}, "message": message, "data": data}
            self._queries[str(query["id"])] = query
            return self.push_update({"callback_query": query})

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least `count` messages were accepted; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.sent) >= count, timeout)

    def wait_delivered(self, timeout: float = 5.0) -> bool:
        """Block until no update is pending (the webhook took them all); False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._updates, timeout)

    # ----- the protocol ----------------------------------------------------------------------
    def call(self, token: str, method: str, params: JSON) -> tuple[str, int, JSON]:
        """Answer one request: `("reply", status, body)`, or `("timeout"|"drop", 0, {})`."""
        if self.latency:
            time.sleep(self.latency)  # each request has its own thread: they wait side by side
        with self._lock:
            self._stats.requests += 1
            self._stats.calls[method] += 1
            try:
                if token != self.token:
                    raise _Refused(401, "Unauthorized")
                fault = self._draw_fault(method)
                if fault in ("timeout", "drop"):
                    return fault, 0, {}
                if fault == "500":
                    raise _Refused(500, "Internal Server Error")
                if fault == "429":
                    raise _too_many(1)
                result = self._run(method, params)
            except _Refused as refused:
                self._stats.rate_limited += refused.code == 429
                return "reply", refused.code, refused.as_json()
            if fault == "timeout_after_accept":
                return "timeout", 0, {}
            return "reply", 200, {"ok": True, "result": result}

    def _draw_fault(self, method: str) -> str | None:
        scripted = self._scripted.get(method)
        kind = scripted.popleft() if scripted else None
        plan = self.faults
        if kind is None and plan and method in plan.methods and self._rng.random() < plan.rate:
            kind = self._rng.choice(plan.kinds)
        if kind:
            self._stats.faults[kind] += 1
        return kind

    def _run(self, method: str, p: JSON) -> Any:
        if method == "getMe":
            return self.me
        if method == "sendMessage":
            return self._send_message(p)
        if method == "sendDocument":
            return self._send_document(p)
        if method == "editMessageText":
            return self._edit_message_text(p)
        if method == "editMessageReplyMarkup":
            return self._edit_reply_markup(p)
        if method == "deleteMessage":
            if self._messages.pop((self._chat(p).id, _int(p, "message_id")), None) is None:
                raise _Refused(400, "Bad Request: message to delete not found")
            return True
        if method == "answerCallbackQuery":
            if self._queries.pop(str(p.get("callback_query_id")), None) is None:
                raise _Refused(400, "Bad Request: query is too old and response timeout "
                                    "expired or query ID is invalid")
            self.answers.append(dict(p))
            return True
        if method == "getUpdates":
            return self._get_updates(p)
        if method in ("setWebhook", "deleteWebhook"):
            return self._set_webhook(p if method == "setWebhook" else {**p, "url": ""})
        if method == "getWebhookInfo":
            return self._webhook_info()
        if method == "setMyCommands":
            self.commands = list(_obj(p, "commands") or [])
            return True
        if method == "getMyCommands":
            return self.commands
        raise _Refused(404, "Not Found")

    def _send_message(self, p: JSON) -> JSON:
        text, parse_mode = str(p.get("text") or ""), p.get("parse_mode")
        chat = self._chat(p)
        plain = _parse(text, parse_mode)
        now = self._admit(chat, p)
        message = self._store(chat, self._new_id(chat), p, text=plain)
        self.sent.append(Sent(chat.id, message["message_id"], text, parse_mode,
                              _obj(p, "reply_markup"), now, dict(p)))
        self._stats.duplicates += (chat.id, text) in self._seen
        self._seen.add((chat.id, text))
        self._lock.notify_all()
        return message

    def _send_document(self, p: JSON) -> JSON:
        caption, parse_mode = str(p.get("caption") or ""), p.get("parse_mode")
        chat = self._chat(p)
        upload = p.get("document")
        file_id = f"BQAC{len(self._files) + 1:04d}"
        if isinstance(upload, str) and upload.startswith("attach://"):
            upload = p.get(upload.removeprefix("attach://"))
        elif isinstance(upload, str) and upload:  # the file_id of an earlier upload
            file_id, upload = upload, self._files.get(upload)
            if upload is None:
                raise _Refused(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if not isinstance(upload, Upload):
            raise _Refused(400, "Bad Request: there is no document in the request")
        if not upload.data:
            raise _Refused(400, "Bad Request: file must be non-empty")
        if len(upload.data) > MAX_UPLOAD:
            raise _Refused(413, "Request Entity Too Large")
        shown = _shown(caption, parse_mode)
        if _units(shown) > MAX_CAPTION:
            raise _Refused(400, "Bad Request: message caption is too long")
        now = self._admit(chat, p)
        self._files[file_id] = upload
        document = {"file_id": file_id, "file_unique_id": file_id.replace("BQAC", "AgAD"),
                    "file_name": upload.filename, "mime_type": upload.content_type,
                    "file_size": len(upload.data)}
        message = self._store(chat, self._new_id(chat), p, document=document,
                              **({"caption": shown} if shown else {}))
        self.documents.append(Document(chat.id, message["message_id"], upload.filename,
                                       caption, parse_mode, upload.data, upload.content_type,
                                       now, dict(p)))
        return message

    def _admit(self, chat: _Chat, p: JSON) -> float:
        """Flood limits and buttons checked, count a message as accepted now."""
        now = self.clock()
        if self.enforce_limits:
            self._check_limits(chat, now)
        _check_buttons(_obj(p, "reply_markup"))
        self._stats.accepted += 1
        self._recent.append(now)
        self._per_chat.setdefault(chat.id, deque()).append(now)
        return now

    def _edit_message_text(self, p: JSON) -> JSON:
        text, parse_mode = str(p.get("text") or ""), p.get("parse_mode")
        chat, old = self._editable(p)
        if "text" not in old:
            raise _Refused(400, "Bad Request: there is no text in the message to edit")
        plain = _parse(text, parse_mode)
        if (old["text"], old.get("reply_markup")) == (plain, _obj(p, "reply_markup")):
            raise _not_modified()
        message = self._store(chat, old["message_id"], p, text=plain)
        message["edit_date"] = int(time.time())
        self.edits.append(Sent(chat.id, old["message_id"], text, parse_mode,
                               _obj(p, "reply_markup"), self.clock(), dict(p)))
        return message

    def _edit_reply_markup(self, p: JSON) -> JSON:
        """Replace the buttons; the edit is recorded with the message's text as shown."""
        chat, old = self._editable(p)
        markup = _obj(p, "reply_markup") or None
        _check_buttons(markup)
        if old.get("reply_markup") == markup:
            raise _not_modified()
        message = {k: v for k, v in old.items() if k != "reply_markup"}
        message |= {"edit_date": int(time.time())} | ({"reply_markup": markup} if markup else {})
        self._messages[(chat.id, old["message_id"])] = message
        shown = str(old.get("text", old.get("caption", "")))
        self.edits.append(Sent(chat.id, old["message_id"], shown, None, markup, self.clock(),
                               dict(p)))
        return message

    def _editable(self, p: JSON) -> tuple[_Chat, JSON]:
        chat = self._chat(p)
        old = self._messages.get((chat.id, _int(p, "message_id")))
        if old is None:
            raise _Refused(400, "Bad Request: message to edit not found")
        return chat, old

    def _store(self, chat: _Chat, message_id: int, p: JSON, **content: Any) -> JSON:
        message: JSON = {"message_id": message_id, "date": int(time.time()),
                         "chat": chat.as_json(), "from": self.me, **content}
        if _obj(p, "reply_markup"):
            message["reply_markup"] = _obj(p, "reply_markup")
        self._messages[(chat.id, message_id)] = message
        return message

    def _check_limits(self, chat: _Chat, now: float) -> None:
        # Strict sliding windows, shortened by `tolerance` so that a client pacing exactly at
        # the limit is never refused because of jitter between its clock and ours.
        second, minute = 1.0 - self.tolerance, 60.0 - self.tolerance
        while self._recent and self._recent[0] <= now - second:
            self._recent.popleft()
        if len(self._recent) >= 30:
            raise _too_many(self._recent[0] + second - now)
        times = self._per_chat.setdefault(chat.id, deque())
        while times and times[0] <= now - minute:
            times.popleft()
        if chat.kind == "private" and times and now - times[-1] < second:
            raise _too_many(times[-1] + second - now)
        if chat.kind != "private" and len(times) >= 20:
            raise _too_many(times[0] + minute - now)

    def _get_updates(self, p: JSON) -> list[JSON]:
        offset, limit = _int(p, "offset", 0), _int(p, "limit", 100)
        deadline = time.monotonic() + _int(p, "timeout", 0)
        if self.webhook:
            raise _Refused(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        while offset < 0 and len(self._updates) > -offset:
            self._updates.popleft()  # a negative offset keeps only the last -offset
        while self._updates and self._updates[0]["update_id"] < offset:
            self._updates.popleft()  # confirmed
        while not self._updates and not self.stopping.is_set():
            if not self._lock.wait(max(0.0, deadline - time.monotonic())):
                break
            if self.webhook:
                raise _Refused(409, "Conflict: terminated by setWebhook request")
        return [u for u in self._updates if u["update_id"] >= offset][:limit]

    # ----- webhook ---------------------------------------------------------------------------
    def _set_webhook(self, p: JSON) -> bool:
        """setWebhook, or with an empty `url` deleteWebhook; either restarts delivery."""
        url, secret = str(p.get("url") or ""), p.get("secret_token")
        target = urlsplit(url)
        loopback = target.hostname in ("127.0.0.1", "localhost", "::1")
        if url and not (target.scheme == "https" or (target.scheme == "http" and loopback)):
            # Plain HTTP is allowed to loopback only, so tests need no certificate.
            raise _Refused(400, "Bad Request: bad webhook: An HTTPS URL must be provided for "
                                "webhook")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise _Refused(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = url
        self._hook = {"secret_token": str(secret or ""),
                      "allowed_updates": list(_obj(p, "allowed_updates") or [])} if url else {}
        self._hook_version += 1
        self._hook_error, self._hook_failures, self._hook_retry_at = None, 0, 0.0
        if _flag(p, "drop_pending_updates"):
            self._updates.clear()
        self._lock.notify_all()  # wakes the delivery thread, and long polls to refuse them
        return True

    def _webhook_info(self) -> JSON:
        info: JSON = {"url": self.webhook, "has_custom_certificate": False,
                      "pending_update_count": len(self._updates)}
        if self.webhook:
            info["max_connections"] = 40
        if self._hook.get("allowed_updates"):
            info["allowed_updates"] = self._hook["allowed_updates"]
        if self._hook_error:
            info["last_error_date"], info["last_error_message"] = self._hook_error
        return info

    def _deliver(self) -> None:
        """The delivery thread: post the oldest update until it is taken, then the next."""
        while True:
            with self._lock:
                update = self._due()
                if update is None:
                    return
                version, secret = self._hook_version, self._hook["secret_token"]
                url = self.webhook
            headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
            problem = self._poster.post(url, update, headers)  # outside the lock
            with self._lock:
                self._stats.webhook_posts += 1
                if problem is None:
                    self._hook_failures, self._hook_retry_at = 0, 0.0
                    if self._updates and self._updates[0] is update:
                        self._updates.popleft()
                        self._lock.notify_all()
                    continue
                self._stats.webhook_errors += 1
                if version == self._hook_version:  # not reconfigured meanwhile
                    self._hook_error = (int(time.time()), problem)
                    self._hook_failures += 1
                    pause = min(2.0, self.webhook_retry * 2 ** (self._hook_failures - 1))
                    self._hook_retry_at = time.monotonic() + pause

    def _due(self) -> JSON | None:
        """Wait (holding the lock) for an update to post now; None once closing."""
        while not self.stopping.is_set():
            wait = self._hook_retry_at - time.monotonic()
            if not (self.webhook and self._updates):
                self._lock.wait()
            elif wait > 0:
                self._lock.wait(wait)
            elif (allowed := self._hook["allowed_updates"]) and not set(
                    self._updates[0]) & set(allowed):
                self._updates.popleft()  # a kind the webhook did not ask for
            else:
                return self._updates[0]
        return None

    # ----- chats -----------------------------------------------------------------------------
    def _chat(self, p: JSON) -> _Chat:
        if p.get("chat_id") in (None, ""):
            raise _Refused(400, "Bad Request: chat_id is empty")
        chat = self._find(p["chat_id"], create=not self.strict_chats)
        if chat is None:
            raise _Refused(400, "Bad Request: chat not found")
        if chat.blocked:
            raise _Refused(403, {"private": "Forbidden: bot was blocked by the user",
                                 "channel": "Forbidden: bot is not a member of the channel chat"}
                           .get(chat.kind, "Forbidden: bot was kicked from the group chat"))
        return chat

    def _known(self, chat_id: int | str) -> _Chat:
        chat = self._find(chat_id, create=True)
        if chat is None:
            raise ValueError(f"not a chat id: {chat_id!r}")
        return chat

    def _find(self, chat_id: Any, *, create: bool) -> _Chat | None:
        text = str(chat_id).strip()
        key: int | str = int(text) if re.fullmatch(r"-?\d+", text) else text.lower()
        if key in self._chats or not create:
            return self._chats.get(key)
        if isinstance(key, int):
            chat = _Chat(key, "private" if key > 0 else "supergroup" if key < -10**12
                         else "group")
        elif re.fullmatch(r"@\w{4,}", key):
            chat = _Chat(-1_000_000_000_000 - len(self._chats), "channel", key[1:])
        else:
            return None
        self._chats[key] = self._chats[chat.id] = chat
        return chat

    def _new_id(self, chat: _Chat) -> int:
        self._last_id[chat.id] += 1
        return self._last_id[chat.id]


def _int(p: JSON, name: str, default: int | None = None) -> int:
    value = p.get(name)
    try:
        return int(value if value not in (None, "") else default)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _Refused(400, f"Bad Request: invalid {name} specified") from None


def _obj(p: JSON, name: str) -> Any:
    value = p.get(name)
    try:
        return json.loads(value) if isinstance(value, str | bytes) else value
    except ValueError:
        raise _Refused(400, f"Bad Request: can't parse {name} JSON object") from None


def _flag(p: JSON, name: str) -> bool:
    return str(p.get(name, "")).lower() in ("true", "1")


def _units(text: str) -> int:
    """Length in UTF-16 code units, which is how Telegram counts."""
    return len(text.encode("utf-16-le")) // 2


_TAGS = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "tg-spoiler",
                   "span", "a", "code", "pre", "blockquote", "tg-emoji"})
_MARKUP = re.compile(r"<(/?)([a-zA-Z][\w-]*)(?:\s[^<>]*)?>|<"
                     r"|&(?:lt|gt|amp|quot|#\d+|#x[\da-fA-F]+);")


def _check_buttons(markup: Any) -> None:
    for row in (markup or {}).get("inline_keyboard", []):
        for button in row:
            if len(str(button.get("callback_data", "")).encode("utf-8")) > 64:
                raise _Refused(400, "Bad Request: BUTTON_DATA_INVALID")


def _not_modified() -> _Refused:
    return _Refused(400, "Bad Request: message is not modified: specified new message content "
                    "and reply markup are exactly the same as a current content and reply "
                    "markup of the message")


def _shown(text: str, parse_mode: Any) -> str:
    """The text Telegram would show, or the 400 it gives for broken HTML."""
    return _parse_html(text) if str(parse_mode or "").lower() == "html" else text


def _parse(text: str, parse_mode: Any) -> str:
    """The text Telegram would show, or the 400 it gives for broken HTML, empty or long text."""
    plain = _shown(text, parse_mode)
    if not plain.strip():
        raise _Refused(400, "Bad Request: message text is empty")
    if _units(plain) > MAX_TEXT:
        raise _Refused(400, "Bad Request: message is too long")
    return plain


def _parse_html(text: str) -> str:
    shown: list[str] = []
    open_: list[str] = []
    pos = 0
    for markup in _MARKUP.finditer(text):
        shown.append(text[pos:markup.start()])
        pos = markup.end()
        closing, name = markup.group(1), (markup.group(2) or "").lower()
        where = f" at byte offset {len(text[:markup.start()].encode())}"
        if markup.group().startswith("&"):
            shown.append(html.unescape(markup.group()))
        elif not name:
            raise _unparsable("Unclosed start tag" + where)
        elif closing and (not open_ or open_.pop() != name):
            raise _unparsable(f'Unmatched end tag "{name}"{where}')
        elif not closing and name not in _TAGS:
            raise _unparsable(f'Unsupported start tag "{name}"{where}')
        elif not closing:
            open_.append(name)
    if open_:
        raise _unparsable(f'Can\'t find end tag corresponding to start tag "{open_[-1]}"')
    return "".join([*shown, text[pos:]])


def _unparsable(what: str) -> _Refused:
    return _Refused(400, f"Bad Request: can't parse entities: {what}")
