"""The fake Bot API: real PTB and raw HTTP against it, limits on an injected clock, webhooks."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.request import HTTPXRequest

from playbook.fake_telegram import FakeBotApi, FaultPlan


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def raw(api: FakeBotApi, method: str, body: bytes = b"",
        content_type: str = "application/json", token: str | None = None) -> tuple[int, Any]:
    """POST to the fake with the standard library, returning (status, decoded JSON)."""
    port = urlsplit(api.base_url).port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("POST", f"/bot{token or api.token}/{method}", body,
                           {"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def send_json(api: FakeBotApi, chat_id: int | str, text: str = "hello", **extra: Any,
              ) -> tuple[int, Any]:
    return raw(api, "sendMessage", json.dumps({"chat_id": chat_id, "text": text, **extra})
               .encode())


def with_bot(api: FakeBotApi, body: Any, *, timeout: float = 5.0) -> Any:
    """Run `body(bot)` with an initialized PTB Bot pointed at the fake."""
    async def main() -> Any:
        request = HTTPXRequest(read_timeout=timeout, connect_timeout=timeout)
        async with Bot(api.token, base_url=api.base_url, request=request) as bot:
            return await body(bot)
    return asyncio.run(main())


class Hook:
    """A city's webhook endpoint on loopback: records each POST; the first `fail` get 500.

    With `stall` it never answers until the test ends.
    """

    def __init__(self, fail: int = 0, stall: bool = False) -> None:
        self.fail, self.stall = fail, stall
        self.received: list[tuple[str | None, dict[str, Any]]] = []
        self.arrived = threading.Condition()
        self.released = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hook.arrived:
                    hook.received.append(
                        (self.headers.get("X-Telegram-Bot-Api-Secret-Token"), body))
                    failing = len(hook.received) <= hook.fail
                    hook.arrived.notify_all()
                if hook.stall:
                    hook.released.wait(10)
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/telegram/hook"

    def wait(self, count: int, timeout: float = 5.0) -> bool:
        """Block until `count` posts arrived; False on timeout."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.received) >= count, timeout)

    def ids(self) -> list[int]:
        return [body["update_id"] for _, body in self.received]

    def __enter__(self) -> Hook:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_ptb_reads_the_bot_user_and_sends_html() -> None:
    """getMe and sendMessage answer objects PTB parses; the message is recorded as sent."""
    with FakeBotApi() as api:
        async def body(bot: Bot) -> Any:
            return bot.username, await bot.send_message(42, "<b>Hi</b> &amp; bye",
                                                        parse_mode="HTML")
        username, message = with_bot(api, body)
    assert username == "playbook_test_bot"
    assert message.message_id == 1
    assert message.chat.id == 42
    assert message.text == "Hi & bye"
    assert [(s.chat_id, s.text, s.parse_mode) for s in api.sent] == [
        (42, "<b>Hi</b> &amp; bye", "HTML")]
    assert api.stats.accepted == 1


def test_json_form_and_multipart_bodies_are_understood() -> None:
    """The three body encodings of the Bot API all reach sendMessage."""
    with FakeBotApi() as api:
        status_json, _ = send_json(api, 1, "json", reply_markup={"inline_keyboard": []})
        form = urlencode({"chat_id": 2, "text": "form"}).encode()
        status_form, _ = raw(api, "sendMessage", form, "application/x-www-form-urlencoded")
        boundary = "XyZ"
        multipart = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in {"chat_id": 3, "text": "multi ✓"}.items()) + f"--{boundary}--\r\n"
        status_multi, answer = raw(api, "sendMessage", multipart.encode(),
                                   f"multipart/form-data; boundary={boundary}")
    assert (status_json, status_form, status_multi) == (200, 200, 200)
    assert answer["result"]["text"] == "multi ✓"
    assert [(s.chat_id, s.text) for s in api.sent] == [(1, "json"), (2, "form"), (3, "multi ✓")]
    assert api.sent[0].reply_markup == {"inline_keyboard": []}


def test_errors_are_answered_exactly_as_telegram_does() -> None:
    """Wrong token, unknown method, bad HTML, long text, unknown and blocked chats."""
    with FakeBotApi(strict_chats=True) as api:
        api.add_chat(7)
        api.add_chat(-100, kind="group")
        api.block(-100)
        answers = {
            "token": raw(api, "getMe", token="1:WRONG"),
            "method": raw(api, "sendSmokeSignal"),
            "html": send_json(api, 7, "<b>bold", parse_mode="HTML"),
            "tag": send_json(api, 7, "<script>x</script>", parse_mode="HTML"),
            "long": send_json(api, 7, "x" * 4097),
            "empty": send_json(api, 7, "   "),
            "unknown": send_json(api, 8),
            "blocked": send_json(api, -100),
        }
    assert answers["token"] == (401, {"ok": False, "error_code": 401,
                                      "description": "Unauthorized"})
    assert answers["method"][0] == 404
    assert answers["html"][0] == 400
    assert answers["html"][1]["description"].startswith("Bad Request: can't parse entities:")
    assert "Unsupported start tag \"script\"" in answers["tag"][1]["description"]
    assert answers["long"][1]["description"] == "Bad Request: message is too long"
    assert answers["empty"][1]["description"] == "Bad Request: message text is empty"
    assert answers["unknown"] == (400, {"ok": False, "error_code": 400,
                                        "description": "Bad Request: chat not found"})
    assert answers["blocked"][0] == 403
    assert api.sent == []


def test_length_is_counted_in_utf16_units_after_parsing() -> None:
    """4,096 visible characters pass however much markup; 2,049 emoji (4,098 units) do not."""
    with FakeBotApi() as api:
        tagged = "<b>" + "x" * 4096 + "</b>"
        ok, _ = send_json(api, 1, tagged, parse_mode="HTML")
        too_long, _ = send_json(api, 2, "😀" * 2049)
    assert (ok, too_long) == (200, 400)


def test_blocked_private_chat_gets_403_via_ptb() -> None:
    """PTB raises Forbidden with Telegram's description for a user who blocked the bot."""
    with FakeBotApi() as api:
        api.block(5)

        async def body(bot: Bot) -> Any:
            return await bot.send_message(5, "x")
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            with_bot(api, body)


def test_31st_message_in_one_second_gets_429() -> None:
    """30 messages per second overall; the 31st waits, and is not recorded."""
    clock = ManualClock()
    with FakeBotApi(clock=clock) as api:
        statuses = [send_json(api, chat)[0] for chat in range(1, 31)]
        status, answer = send_json(api, 31)
        clock.now += 1.0
        later, _ = send_json(api, 31)
    assert statuses == [200] * 30
    assert status == 429
    assert answer == {"ok": False, "error_code": 429,
                      "description": "Too Many Requests: retry after 1",
                      "parameters": {"retry_after": 1}}
    assert later == 200
    assert len(api.sent) == 31
    assert api.stats.rate_limited == 1


def test_second_message_to_a_private_chat_within_a_second_gets_429() -> None:
    """One message per second per private chat; a correctly paced one is accepted."""
    clock = ManualClock()
    with FakeBotApi(clock=clock) as api:
        first, _ = send_json(api, 9, "one")
        clock.now += 0.5
        early, answer = send_json(api, 9, "two")
        clock.now += 0.5
        paced, _ = send_json(api, 9, "two")
    assert (first, early, paced) == (200, 429, 200)
    assert answer["parameters"]["retry_after"] >= 1
    assert [s.text for s in api.sent] == ["one", "two"]


def test_21st_message_to_a_group_within_a_minute_gets_429() -> None:
    """20 messages per minute per group; the 21st is told to wait most of a minute."""
    clock = ManualClock()
    with FakeBotApi(clock=clock) as api:
        statuses = []
        for n in range(20):
            statuses.append(send_json(api, -500, f"m{n}")[0])
            clock.now += 1.0
        status, answer = send_json(api, -500, "m20")
        clock.now += 40.0
        later, _ = send_json(api, -500, "m20")
    assert statuses == [200] * 20
    assert status == 429
    assert 30 <= answer["parameters"]["retry_after"] <= 60
    assert later == 200


def test_limits_can_be_switched_off() -> None:
    """Without enforce_limits a burst to one chat is accepted in full."""
    with FakeBotApi(enforce_limits=False) as api:
        statuses = [send_json(api, 1, f"m{n}")[0] for n in range(40)]
    assert statuses == [200] * 40


def test_scripted_faults_reach_ptb_as_telegram_errors() -> None:
    """500, 429, a held request and a dropped connection each become the matching PTB error."""
    with FakeBotApi(hold=5.0) as api:
        seen: list[str] = []

        async def body(bot: Bot) -> None:
            for kind in ("500", "429", "timeout", "drop"):
                api.fail_next(kind)
                try:
                    await bot.send_message(1, kind)
                except (RetryAfter, TimedOut, NetworkError) as exc:
                    seen.append(type(exc).__name__)
        with_bot(api, body, timeout=0.3)
        assert seen == ["NetworkError", "RetryAfter", "TimedOut", "NetworkError"]
        assert api.sent == []
        assert api.stats.faults == {"500": 1, "429": 1, "timeout": 1, "drop": 1}


def test_timeout_after_accept_records_the_message_and_retries_are_duplicates() -> None:
    """The client times out, the message was delivered anyway; resending counts a duplicate."""
    with FakeBotApi(enforce_limits=False) as api:
        api.fail_next("timeout_after_accept")

        async def body(bot: Bot) -> None:
            with pytest.raises(TimedOut):
                await bot.send_message(3, "evacuate")
            await bot.send_message(3, "evacuate")
        with_bot(api, body, timeout=0.3)
        assert [s.text for s in api.sent] == ["evacuate", "evacuate"]
        assert api.stats.duplicates == 1


def test_random_faults_follow_the_seed() -> None:
    """The same seed gives the same faults; every request is either accepted or faulted."""
    def run() -> list[int]:
        plan = FaultPlan(rate=0.5, kinds=("500", "429"), seed=7)
        with FakeBotApi(enforce_limits=False, faults=plan) as api:
            statuses = [send_json(api, 1, str(n))[0] for n in range(40)]
            stats = api.stats
        assert stats.accepted + sum(stats.faults.values()) == 40
        return statuses
    first = run()
    assert first == run()
    assert {200, 500, 429} == set(first)


def test_get_updates_returns_pushed_updates_and_honours_offset() -> None:
    """Pushed messages and button presses arrive as PTB Updates; a confirmed offset drops them."""
    with FakeBotApi() as api:
        api.push_message(11, "/start now", username="amal")

        async def body(bot: Bot) -> tuple[Any, ...]:
            sent = await bot.send_message(11, "Approve?")
            api.push_callback_query(11, "approve:1")
            first = await bot.get_updates(timeout=0)
            again = await bot.get_updates(offset=first[0].update_id + 1, timeout=0)
            query = again[0].callback_query
            assert query is not None
            answered = await bot.answer_callback_query(query.id, "Thanks")
            confirmed = await bot.get_updates(offset=again[-1].update_id + 1, timeout=0)
            return first, again, answered, confirmed, sent
        first, again, answered, confirmed, sent = with_bot(api, body)
    assert [u.update_id for u in first] == [1, 2]
    assert first[0].message.text == "/start now"
    assert first[0].message.from_user.username == "amal"
    assert first[0].message.entities[0].type == "bot_command"
    assert [u.update_id for u in again] == [2]
    assert again[0].callback_query.data == "approve:1"
    assert again[0].callback_query.message.message_id == sent.message_id
    assert answered is True
    assert confirmed == ()
    assert api.answers[0]["text"] == "Thanks"


def test_long_polling_wakes_when_an_update_is_pushed() -> None:
    """getUpdates with a timeout returns as soon as an update arrives, not at the timeout."""
    with FakeBotApi() as api:
        pusher = threading.Timer(0.1, api.push_message, args=(4, "hello"))

        async def body(bot: Bot) -> Any:
            pusher.start()
            return await bot.get_updates(timeout=20, read_timeout=25)
        started = time.monotonic()
        updates = with_bot(api, body)
        pusher.join()
    assert time.monotonic() - started < 10
    assert [u.message.text for u in updates] == ["hello"]


def test_webhook_methods_and_their_conflict_with_polling() -> None:
    """While a webhook is set getUpdates is refused; deleteWebhook restores polling."""
    with FakeBotApi() as api:
        async def body(bot: Bot) -> tuple[Any, ...]:
            await bot.set_webhook("https://city.example/hook")
            info = await bot.get_webhook_info()
            with pytest.raises(Conflict):
                await bot.get_updates(timeout=0)
            await bot.delete_webhook()
            return info, await bot.get_updates(timeout=0), await bot.get_webhook_info()
        info, updates, after = with_bot(api, body)
    assert info.url == "https://city.example/hook"
    assert updates == ()
    assert after.url == ""


def test_edit_delete_and_commands() -> None:
    """editMessageText changes a sent message, deleteMessage removes it, setMyCommands stores."""
    with FakeBotApi() as api:
        async def body(bot: Bot) -> Any:
            message = await bot.send_message(6, "draft")
            edited = await bot.edit_message_text("final", chat_id=6,
                                                 message_id=message.message_id)
            with pytest.raises(BadRequest, match="not modified"):
                await bot.edit_message_text("final", chat_id=6, message_id=message.message_id)
            await bot.set_my_commands([BotCommand("status", "Show incidents")])
            assert await bot.delete_message(6, message.message_id)
            with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
                await bot.delete_message(6, message.message_id)
            return edited
        edited = with_bot(api, body)
    assert edited.text == "final"
    assert [e.text for e in api.edits] == ["final"]
    assert api.commands == [{"command": "status", "description": "Show incidents"}]


def test_bad_token_is_invalid_for_ptb() -> None:
    """PTB's initialize sees 401 and raises InvalidToken."""
    with FakeBotApi() as api:
        async def main() -> None:
            async with Bot("1:WRONG", base_url=api.base_url):
                pass
        with pytest.raises(InvalidToken):
            asyncio.run(main())


def test_concurrent_clients_are_all_recorded_once() -> None:
    """200 concurrent sends from one PTB bot: every one accepted, ids unique per chat."""
    with FakeBotApi(enforce_limits=False) as api:
        async def body(bot: Bot) -> list[Any]:
            return await asyncio.gather(*(bot.send_message(n, f"m{n}") for n in range(1, 201)))
        messages = with_bot(api, body)
    assert len(api.sent) == 200
    assert {(m.chat.id, m.message_id) for m in messages} == {(n, 1) for n in range(1, 201)}
    assert api.stats.accepted == 200


def test_webhook_posts_arrive_in_order_with_the_secret_header() -> None:
    """Every pushed update is posted to the webhook once, in update_id order, with the secret."""
    with FakeBotApi() as api, Hook() as hook:
        async def set_hook(bot: Bot) -> bool:
            return await bot.set_webhook(hook.url, secret_token="city-SECRET_1")
        assert with_bot(api, set_hook)
        api.push_message(11, "/start")
        api.push_callback_query(11, "ack:abc:r")
        for n in range(8):
            api.push_message(12 + n % 2, f"concern {n}")
        assert api.wait_delivered()

        async def info(bot: Bot) -> Any:
            return await bot.get_webhook_info()
        after = with_bot(api, info)
        stats = api.stats
    assert hook.ids() == list(range(1, 11))
    assert {secret for secret, _ in hook.received} == {"city-SECRET_1"}
    updates = [Update.de_json(body) for _, body in hook.received]
    first, pressed = updates[0].message, updates[1].callback_query
    assert first is not None
    assert first.text == "/start"
    assert pressed is not None
    assert pressed.data == "ack:abc:r"
    assert (after.url, after.pending_update_count, after.last_error_message) == (
        hook.url, 0, None)
    assert (stats.webhook_posts, stats.webhook_errors) == (10, 0)


def test_a_failing_webhook_gets_the_same_update_again() -> None:
    """A 500 from the webhook keeps the update queued; it is posted again, then the next one."""
    with FakeBotApi(webhook_retry=0.01) as api, Hook(fail=2) as hook:
        async def set_hook(bot: Bot) -> bool:
            return await bot.set_webhook(hook.url)
        with_bot(api, set_hook)
        api.push_message(5, "first")
        api.push_message(5, "second")
        assert api.wait_delivered()

        async def info(bot: Bot) -> Any:
            return await bot.get_webhook_info()
        after = with_bot(api, info)
        stats = api.stats
    assert hook.ids() == [1, 1, 1, 2]
    assert {secret for secret, _ in hook.received} == {None}
    assert after.pending_update_count == 0
    assert after.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert after.last_error_date is not None
    assert (stats.webhook_posts, stats.webhook_errors) == (4, 2)


def test_an_unreachable_webhook_keeps_updates_pending_until_one_answers() -> None:
    """Refused connections are reported by getWebhookInfo; a new URL gets the queued updates."""
    with FakeBotApi(webhook_retry=0.01) as api, Hook() as hook:
        closed = socket.create_server(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
        closed.close()

        async def body(bot: Bot) -> Any:
            await bot.set_webhook(dead_url)
            api.push_message(5, "one")
            api.push_message(5, "two")
            while api.stats.webhook_errors < 3:
                await asyncio.sleep(0.01)
            failing = await bot.get_webhook_info()
            await bot.set_webhook(hook.url)
            assert await asyncio.to_thread(api.wait_delivered)
            return failing, await bot.get_webhook_info()
        failing, delivered = with_bot(api, body)
    assert (failing.pending_update_count, failing.last_error_message) == (
        2, "Connection refused")
    assert hook.ids() == [1, 2]
    assert (delivered.pending_update_count, delivered.last_error_message) == (0, None)


def test_delete_webhook_stops_delivery_and_polling_resumes() -> None:
    """After deleteWebhook nothing is posted; the update waits for getUpdates instead."""
    with FakeBotApi() as api, Hook() as hook:
        async def body(bot: Bot) -> Any:
            await bot.set_webhook(hook.url)
            api.push_message(5, "hooked")
            assert await asyncio.to_thread(api.wait_delivered)
            await bot.delete_webhook()
            api.push_message(5, "polled")
            await asyncio.sleep(0.2)
            return await bot.get_updates(timeout=0)
        polled = with_bot(api, body)
    assert [body["message"]["text"] for _, body in hook.received] == ["hooked"]
    assert [u.message.text for u in polled] == ["polled"]


def test_get_updates_conflicts_with_a_webhook_even_mid_poll() -> None:
    """getUpdates is refused while a webhook is set, and a long poll is ended by setWebhook."""
    with FakeBotApi() as api:
        async def body(bot: Bot) -> tuple[str, str]:
            poll = asyncio.ensure_future(bot.get_updates(timeout=20, read_timeout=25))
            await asyncio.sleep(0.2)
            await bot.set_webhook("https://city.example/hook")
            with pytest.raises(Conflict) as ended:
                await poll
            with pytest.raises(Conflict) as refused:
                await bot.get_updates(timeout=0)
            return ended.value.message, refused.value.message
        started = time.monotonic()
        ended, refused = with_bot(api, body)
    assert time.monotonic() - started < 10
    assert ended == "Conflict: terminated by setWebhook request"
    assert refused == ("Conflict: can't use getUpdates method while webhook is active; use "
                       "deleteWebhook to delete the webhook first")


def test_set_webhook_wants_https_and_a_plain_secret() -> None:
    """Plain HTTP is refused except to loopback; a secret with other characters is refused."""
    with FakeBotApi() as api:
        plain = raw(api, "setWebhook", json.dumps({"url": "http://city.example/h"}).encode())
        secret = raw(api, "setWebhook", json.dumps({"url": "https://city.example/h",
                                                    "secret_token": "no spaces"}).encode())
        local = raw(api, "setWebhook", json.dumps({"url": "http://127.0.0.1:9/h"}).encode())
    assert plain[0] == secret[0] == 400
    assert "HTTPS URL must be provided" in plain[1]["description"]
    assert "secret token" in secret[1]["description"]
    assert local == (200, {"ok": True, "result": True})


def test_close_does_not_wait_for_a_webhook_that_never_answers() -> None:
    """A post in flight is cut when the fake closes."""
    with Hook(stall=True) as hook:
        api = FakeBotApi(webhook_timeout=30).start()
        raw(api, "setWebhook", json.dumps({"url": hook.url}).encode())
        api.push_message(5, "hello")
        assert hook.wait(1)
        started = time.monotonic()
        api.close()
        assert time.monotonic() - started < 2


def test_edit_message_reply_markup_replaces_and_removes_buttons() -> None:
    """Buttons change without the text; the same buttons again are 'not modified'."""
    first = InlineKeyboardMarkup([[InlineKeyboardButton("Received", callback_data="ack:1:r")]])
    done = InlineKeyboardMarkup([[InlineKeyboardButton("✓ Thanks", callback_data="noop")]])
    with FakeBotApi() as api:
        async def body(bot: Bot) -> tuple[Any, ...]:
            message = await bot.send_message(6, "Briefing", reply_markup=first)
            changed = await bot.edit_message_reply_markup(6, message.message_id,
                                                          reply_markup=done)
            with pytest.raises(BadRequest, match="not modified"):
                await bot.edit_message_reply_markup(6, message.message_id, reply_markup=done)
            removed = await bot.edit_message_reply_markup(6, message.message_id)
            with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
                await bot.edit_message_reply_markup(6, 99, reply_markup=done)
            return changed, removed
        changed, removed = with_bot(api, body)
    assert changed.text == "Briefing"
    assert changed.reply_markup == done
    assert removed.reply_markup is None
    assert [(e.chat_id, e.message_id, e.text) for e in api.edits] == [
        (6, 1, "Briefing"), (6, 1, "Briefing")]
    assert api.edits[0].reply_markup == done.to_dict()
    assert api.edits[1].reply_markup is None


def test_send_document_uploads_bytes_with_filename_and_caption() -> None:
    """A multipart upload is recorded byte for byte; its file_id can be sent again."""
    data = bytes(range(256)) * 40 + b"\r\n--boundary\r\n"
    with FakeBotApi(enforce_limits=False) as api:
        async def body(bot: Bot) -> tuple[Any, Any]:
            message = await bot.send_document(7, data, filename="Lagebild 4 Mai.pdf",
                                              caption="<b>Situation</b> at 08:00",
                                              parse_mode="HTML")
            assert message.document is not None
            again = await bot.send_document(8, message.document.file_id, caption="again")
            return message, again
        message, again = with_bot(api, body)
    assert message.caption == "Situation at 08:00"
    assert (message.document.file_name, message.document.file_size) == (
        "Lagebild 4 Mai.pdf", len(data))
    assert message.document.mime_type == "application/pdf"
    assert again.document.file_id == message.document.file_id
    first, second = api.documents
    assert (first.chat_id, first.filename, first.caption, first.parse_mode, first.data) == (
        7, "Lagebild 4 Mai.pdf", "<b>Situation</b> at 08:00", "HTML", data)
    assert (second.chat_id, second.data) == (8, data)
    assert api.sent == []
    assert api.stats.accepted == 2


def test_send_document_checks_the_caption_and_the_flood_limits() -> None:
    """Captions count 1,024 UTF-16 units after parsing; documents share a chat's limits."""
    clock = ManualClock()
    with FakeBotApi(clock=clock) as api:
        async def body(bot: Bot) -> None:
            tagged = "<i>" + "x" * 1024 + "</i>"
            await bot.send_document(9, b"%PDF", filename="a.pdf", caption=tagged,
                                    parse_mode="HTML")
            clock.now += 1.0
            with pytest.raises(BadRequest, match="caption is too long"):
                await bot.send_document(9, b"%PDF", filename="b.pdf", caption="😀" * 513)
            with pytest.raises(BadRequest, match=r"(?i)file must be non-empty"):
                await bot.send_document(9, b"", filename="c.pdf")
            await bot.send_message(9, "see above")
            with pytest.raises(RetryAfter):
                await bot.send_document(9, b"%PDF", filename="d.pdf")
        with_bot(api, body)
    assert [d.filename for d in api.documents] == ["a.pdf"]
    assert api.stats.rate_limited == 1
