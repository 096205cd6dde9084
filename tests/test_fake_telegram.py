"""The fake Bot API: the real PTB client and raw HTTP against it, limits on an injected clock."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from telegram import Bot, BotCommand
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
