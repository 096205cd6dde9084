"""The offline channels: the console (and the exercise sandbox), and files for a website.

No token, no network: with the built-in defaults every message lands here, readable, so a city
can try the whole flow on a laptop.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TextIO

from playbook.atomicfile import replace_file
from playbook.delivery import Delivery, Limits, plain_text
from playbook.errors import SendFailed
from playbook.phrases import with_ack_request
from playbook.render import is_rtl

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A file name made from an address or key: no slashes, no dots at the start."""
    return _UNSAFE.sub("_", text).lstrip("._") or "_"


class ConsoleChannel:
    """Prints each message; with a folder, also appends it to one log file per address."""

    name = "console"
    limits = Limits()

    def __init__(self, out: TextIO | None = None, folder: Path | None = None, *,
                 standing_in_for: str = "") -> None:
        self.out = out
        self.folder = folder
        self.standing_in_for = standing_in_for

    async def send(self, delivery: Delivery) -> str:
        """Write the message where a person can read it."""
        via = f" · {self.standing_in_for} {delivery.address}" if self.standing_in_for else ""
        block = (f"── {delivery.recipient_name} <{delivery.recipient_id}> · {delivery.lang} · "
                 f"{delivery.step_id} · {delivery.incident_id}{via}\n"
                 f"{plain_text(with_ack_request(delivery, buttons=False))}\n")
        try:
            if self.folder is not None:
                self.folder.mkdir(parents=True, exist_ok=True)
                path = self.folder / f"{safe_name(delivery.address)}.txt"
                with path.open("a", encoding="utf-8") as log:
                    log.write(block + "\n")
            (self.out or sys.stdout).write(block)
        except OSError as exc:
            raise SendFailed(f"cannot write the console log: {exc.strerror}",
                             retryable=True) from exc
        if self.standing_in_for:
            return f"console (no {self.standing_in_for} configured)"
        return "console"

    async def aclose(self) -> None:
        """Nothing to release."""


class FileChannel:
    """Writes each message as an HTML fragment a website can publish: one file per message."""

    name = "file"
    limits = Limits()

    def __init__(self, root: Path) -> None:
        self.root = root

    async def send(self, delivery: Delivery) -> str:
        """Write the message atomically to `root/<address>/<key>.html`."""
        folder = self.root / safe_name(delivery.address)
        path = folder / f"{safe_name(delivery.key)}.html"
        direction = "rtl" if is_rtl(delivery.lang) else "auto"
        html = (f'<article lang="{delivery.lang}" dir="{direction}">\n'
                + delivery.text.replace("\n", "<br>\n") + "\n</article>\n")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            replace_file(path, html.encode("utf-8"))
        except OSError as exc:
            raise SendFailed(f"cannot write {path}: {exc.strerror}", retryable=True) from exc
        return str(path)

    async def aclose(self) -> None:
        """Nothing to release."""
