"""The Telegram channel: real PTB against the fake Bot API, error mapping, and `split_html`."""

from __future__ import annotations

import asyncio
import html
import re
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playbook.channels.telegram import TelegramChannel, split_html
from playbook.delivery import Delivery
from playbook.errors import SendFailed
from playbook.fake_telegram import FakeBotApi
from playbook.render import EXERCISE_BANNER, html_problems

T = TypeVar("T")
ARABIC_WORDS = ["تحديث", "عاجل", "بشأن", "الحادث", "في", "ساحة", "السوق", "يرجى", "تجنب",
                "المنطقة", "والبقاء", "على", "اطلاع"]


class ManualClock:
    """The fake's clock, moved only by the channel's injected sleep."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def delivery(address: str, text: str, *, key: str = "k1", exercise: bool = False) -> Delivery:
    return Delivery(key=key, incident_id="inc-1", exercise=exercise, step_id="update", number=1,
                    recipient_id="r1", recipient_name="Amal", lang="ar", channel="telegram",
                    address=address, subject="Update", text=text,
                    created_at=datetime(2025, 1, 1, tzinfo=UTC))


def run(api: FakeBotApi, body: Callable[[TelegramChannel], Awaitable[T]], *,
        token: str | None = None, timeout: float = 5.0, clock: ManualClock | None = None) -> T:
    """Run `body(channel)` with a channel pointed at the fake, closing it afterwards."""
    async def main() -> T:
        channel = TelegramChannel(token or api.token, base_url=api.base_url, timeout=timeout,
                                  sleep=clock.sleep if clock else asyncio.sleep)
        try:
            return await body(channel)
        finally:
            await channel.aclose()
    return asyncio.run(main())


def failure(api: FakeBotApi, text: str = "hello", address: str = "42", **kw: object,
            ) -> SendFailed:
    """The SendFailed one send raises."""
    async def body(channel: TelegramChannel) -> SendFailed:
        with pytest.raises(SendFailed) as caught:
            await channel.send(delivery(address, text))
        return caught.value
    return run(api, body, **kw)  # type: ignore[arg-type]


def visible(part: str) -> str:
    return html.unescape(re.sub(r"<[^<>]*>", "", part))


def test_a_message_arrives_as_html_without_link_preview() -> None:
    """The text reaches the chat with parse_mode HTML, previews off; the receipt is its id."""
    with FakeBotApi() as api:
        async def body(channel: TelegramChannel) -> str:
            return await channel.send(delivery("42", "<b>Stay away</b> from Market Square"))
        receipt = run(api, body)
    assert receipt == "1"
    [sent] = api.sent
    assert (sent.chat_id, sent.text, sent.parse_mode) == (
        42, "<b>Stay away</b> from Market Square", "HTML")
    assert '"is_disabled": true' in str(sent.params["link_preview_options"])


def test_construction_is_lazy_and_the_token_is_checked_once() -> None:
    """No request before the first send; getMe once however many sends follow."""
    with FakeBotApi() as api:
        async def body(channel: TelegramChannel) -> int:
            before = api.stats.requests
            for chat in (1, 2, 3):
                await channel.send(delivery(str(chat), "x"))
            return before
        before = run(api, body)
    assert before == 0
    assert api.stats.calls == {"getMe": 1, "sendMessage": 3}


def test_long_arabic_exercise_message_arrives_in_two_well_formed_parts() -> None:
    """5,000 characters of Arabic become two parts, each under 4,096, each with the banner."""
    banner = EXERCISE_BANNER["ar"]
    words = (ARABIC_WORDS[n % len(ARABIC_WORDS)] for n in range(2000))
    body_text = ""
    for n, word in enumerate(words):
        body_text += word + ("\n" if n % 40 == 39 else " ")
        if len(body_text) > 5000:
            break
    text = f"{banner}\n\n<b>{body_text.strip()}</b>"
    assert len(text) > 5000
    clock = ManualClock()
    with FakeBotApi(clock=clock) as api:
        async def body(channel: TelegramChannel) -> str:
            return await channel.send(delivery("42", text, exercise=True))
        receipt = run(api, body, clock=clock)
    assert receipt == "1,2"
    assert api.stats.rate_limited == 0
    parts = [s.text for s in api.sent]
    assert len(parts) == 2
    assert all(len(p) <= 4096 and html_problems(p) == [] for p in parts)
    assert all(p.startswith(banner) for p in parts)
    rest = parts[1].removeprefix(f"{banner}\n\n")
    assert visible(parts[0]) + visible(rest) == visible(text)
    assert api.sent[1].time - api.sent[0].time >= 1.0


def test_a_retry_after_a_failed_second_part_sends_only_the_rest() -> None:
    """Part one is not repeated when the dispatcher retries a half-sent message."""
    clock = ManualClock()
    armed = [True]

    async def sleep_then_fail(seconds: float) -> None:
        await clock.sleep(seconds)
        if armed.pop() if armed else False:
            api.fail_next("500")  # the pause between parts: part two will fail

    with FakeBotApi(clock=clock) as api:
        async def body(channel: TelegramChannel) -> tuple[SendFailed, str]:
            long = delivery("42", "word " * 1000)
            with pytest.raises(SendFailed) as caught:
                await channel.send(long)
            clock.now += 5
            return caught.value, await channel.send(long)

        async def main() -> tuple[SendFailed, str]:
            channel = TelegramChannel(api.token, base_url=api.base_url, sleep=sleep_then_fail)
            try:
                return await body(channel)
            finally:
                await channel.aclose()
        error, receipt = asyncio.run(main())
    assert error.retryable
    assert error.reason.startswith("part 2 of 2:")
    assert [(s.chat_id, s.message_id) for s in api.sent] == [(42, 1), (42, 2)]
    assert receipt == "1,2"
    assert api.stats.duplicates == 0


def test_flood_control_is_retryable_after_the_given_seconds() -> None:
    """429 maps to retryable with Telegram's retry_after."""
    with FakeBotApi() as api:
        api.fail_next("429")
        error = failure(api)
    assert (error.retryable, error.retry_after, error.gone) == (True, 1.0, False)


def test_a_blocked_user_is_gone() -> None:
    """403 Forbidden: never retry, mark the address gone."""
    with FakeBotApi() as api:
        api.block(42)
        error = failure(api)
    assert (error.retryable, error.gone) == (False, True)
    assert "blocked" in error.reason


def test_chat_not_found_is_gone() -> None:
    """400 chat not found: the address will never work."""
    with FakeBotApi(strict_chats=True) as api:
        error = failure(api)
    assert (error.retryable, error.gone) == (False, True)


def test_other_bad_requests_are_not_retried() -> None:
    """Broken HTML is our bug, not the address's: not retryable, not gone."""
    with FakeBotApi() as api:
        error = failure(api, "<b>unclosed")
    assert (error.retryable, error.gone, error.outcome_unknown) == (False, False, False)
    assert "parse entities" in error.reason


def test_server_error_is_retryable() -> None:
    """500 Internal Server Error maps to a plain retry."""
    with FakeBotApi() as api:
        api.fail_next("500")
        error = failure(api)
    assert (error.retryable, error.outcome_unknown) == (True, False)


def test_timeout_is_retryable_with_unknown_outcome() -> None:
    """A request held past the client's timeout may have been delivered: outcome unknown."""
    with FakeBotApi(hold=5.0) as api:
        api.fail_next("timeout_after_accept")
        error = failure(api, timeout=0.5)
        delivered = len(api.sent)
    assert (error.retryable, error.outcome_unknown) == (True, True)
    assert delivered == 1


def test_a_timeout_while_checking_the_token_sent_nothing() -> None:
    """A getMe timeout on first use is retryable, and no message can have left."""
    with FakeBotApi(hold=5.0) as api:
        api.fail_next("timeout", method="getMe")
        error = failure(api, timeout=0.5)
    assert (error.retryable, error.outcome_unknown) == (True, False)


def test_dropped_connection_is_retryable() -> None:
    """The server closes the socket without answering: a network error, retry."""
    with FakeBotApi() as api:
        api.fail_next("drop")
        error = failure(api)
    assert (error.retryable, error.outcome_unknown, error.gone) == (True, False, False)


def test_bad_token_is_not_retryable_and_never_shown() -> None:
    """A rejected token says to check the config and appears nowhere in the error chain."""
    secret = "987654:SECRET-token-value"
    with FakeBotApi() as api:
        error = failure(api, token=secret)
        channel = TelegramChannel(secret, base_url=api.base_url)
    assert not error.retryable
    assert "[telegram] token" in error.reason
    rendered = "".join(traceback.format_exception(error)) + repr(error) + repr(channel)
    assert secret not in rendered
    assert "987654" not in rendered


def test_many_concurrent_sends_share_the_connection_pool() -> None:
    """100 sends at once to 100 chats all arrive."""
    with FakeBotApi(enforce_limits=False) as api:
        async def body(channel: TelegramChannel) -> list[str]:
            return await asyncio.gather(*(channel.send(delivery(str(n), f"m{n}", key=str(n)))
                                          for n in range(1, 101)))
        receipts = run(api, body)
    assert receipts == ["1"] * 100
    assert len(api.sent) == 100


# ----- split_html ---------------------------------------------------------------------------

def test_short_text_is_one_part() -> None:
    """Within the limit nothing changes."""
    assert split_html("<b>hi</b>", 20) == ["<b>hi</b>"]


def test_breaks_prefer_paragraphs_then_lines_then_words() -> None:
    """The last blank line that fits wins over a later newline or space."""
    text = "aaaa\n\nbbbb\ncccc dddd eeee"
    assert split_html(text, 16) == ["aaaa\n\nbbbb\n", "cccc dddd eeee"]
    assert split_html("aaaa bbbb\ncccc dddd", 12) == ["aaaa bbbb\n", "cccc dddd"]
    assert split_html("aaaa bbbb cccc", 11) == ["aaaa bbbb ", "cccc"]


def test_open_tags_are_closed_and_reopened() -> None:
    """A tag spanning the break is closed at the end and reopened with its attributes."""
    parts = split_html('<a href="https://x.org">one two three</a>', 36)
    assert parts == ['<a href="https://x.org">one two </a>', '<a href="https://x.org">three</a>']


def test_entities_are_never_cut() -> None:
    """`&amp;` stays whole even when the break falls inside a long word."""
    parts = split_html("x" * 9 + "&amp;" + "y" * 9, 12)
    assert all("&" not in p or "&amp;" in p for p in parts)
    assert "".join(parts) == "x" * 9 + "&amp;" + "y" * 9


def test_limit_too_small_for_the_markup_is_an_error() -> None:
    """A tag longer than the limit cannot be split: ValueError, not a broken part."""
    with pytest.raises(ValueError, match="markup"):
        split_html('<a href="https://example.org/very/long">x</a> and more', 20)


TAGS = ["b", "i", "u", "s", "code", "blockquote"]
PIECE = st.sampled_from(["a", "word", "longerwords", "تحديث", "عاجل", "😀", "x😀y", " ", " ",
                         "\n", "\n\n", "&amp;", "&lt;", "&#1575;"])


def html_of(depth: int) -> st.SearchStrategy[str]:
    """Well-formed Telegram HTML, nested at most `depth` deep."""
    leaf = st.lists(PIECE, max_size=30).map("".join)
    if depth == 0:
        return leaf

    def wrap(pair: tuple[str, str]) -> str:
        tag, inner = pair
        if tag == "a":
            return f'<a href="https://city.example/{len(inner)}">{inner}</a>'
        return f"<{tag}>{inner}</{tag}>"
    node = st.tuples(st.sampled_from([*TAGS, "a"]), html_of(depth - 1)).map(wrap)
    return st.lists(st.one_of(leaf, node), max_size=12).map("".join)


@settings(max_examples=150, deadline=None)
# Three nested links take about 150 units of markup on their own: below that nothing fits.
@given(text=html_of(3), limit=st.integers(min_value=200, max_value=600))
def test_split_html_properties(text: str, limit: int) -> None:
    """Every part fits in UTF-16 units, is well-formed, and together they say the same thing."""
    parts = split_html(text, limit)
    assert all(len(p.encode("utf-16-le")) // 2 <= limit for p in parts)
    assert all(html_problems(p) == [] for p in parts)
    assert all(not re.search(r"&[#\w]*(?![#\w;])", p) for p in parts)
    assert "".join(visible(p) for p in parts) == visible(text)
