"""The one exception tree, and the `Problem` record that every bad-input error carries.

Every error a person can cause (a broken playbook, template, config or command) becomes a
`BadInput` holding one `Problem` per thing that is wrong, so a city fixes everything in one pass.
The command line turns `BadInput` into exit code 2 and `RuntimeFailure` into exit code 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

Loc = tuple[str | int, ...]
"""A path into a document: `("steps", 2, "to")`."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an input, located as precisely as the input allows."""

    path: str
    line: int | None = None
    col: int | None = None
    field: str = ""
    message: str = ""
    hint: str = ""

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        text = f"{where}: "
        if self.field:
            text += f"{self.field}: "
        text += self.message
        if self.hint:
            text += f" — {self.hint}"
        return text


class PlaybookError(Exception):
    """Root of every error this package raises on purpose."""


class BadInput(PlaybookError):
    """The input is wrong; nothing was changed. Carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("BadInput needs at least one problem")
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def one(
        cls, path: str, message: str, hint: str = "", *, line: int | None = None,
        col: int | None = None, field: str = "",
    ) -> BadInput:
        """Build the common case of a single problem."""
        return cls([Problem(path, line, col, field, message, hint)])


class RuntimeFailure(PlaybookError):
    """The input was fine but something outside it failed (disk, database, network)."""


class SendFailed(RuntimeFailure):
    """A channel could not deliver one message; the dispatcher decides what happens next.

    `retryable`: try again later (after `retry_after` seconds when the channel says so).
    `outcome_unknown`: the request may have reached the recipient (a timeout after sending), so a
    retry may duplicate it; the dispatcher counts these.
    `gone`: the address will never work again (the user blocked the bot, the mailbox is gone);
    the recipient's channel is marked inactive and the community liaison is told.
    """

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None,
                 outcome_unknown: bool = False, gone: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown
        self.gone = gone
