"""The HTML report in a real browser: headless Chromium draws the timeline chart, no script."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest

from playbook.report import after_action
from playbook.reportdoc import LATE, ON_TIME, PLANNED, html
from test_report import drill_log, frozen

BANNER_YELLOW = "#ffd500"


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with its own profile folder, or skip when it is not installed."""
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("Chromium is not installed (Debian package `chromium`): the browser "
                    "rendering check is skipped")
    done = subprocess.run(
        [found, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def colours(png: bytes) -> Counter[str]:
    """How many pixels of each colour an 8-bit RGB or RGBA PNG has (decoded with the stdlib)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at, idat, header = 8, b"", b""
    while at < len(png):
        size, kind = struct.unpack(">I4s", png[at:at + 8])
        body = png[at + 8:at + 8 + size]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        at += 12 + size
    width, height, depth, kind_of_colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8, "an 8-bit screenshot"
    assert kind_of_colour in (2, 6), "an RGB or RGBA screenshot"
    step = 3 if kind_of_colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * step
    low, high = int.from_bytes(b"\x7f" * stride), int.from_bytes(b"\x80" * stride)
    previous, counts = bytes(stride), Counter[bytes]()
    for y in range(height):
        filter_type, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:
                                                                 (y + 1) * (stride + 1)])
        if filter_type == 2:  # bytewise addition without carries, all at once: the common case
            a, b = int.from_bytes(line), int.from_bytes(previous)
            line = bytearray((((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(stride))
        elif filter_type:
            for i in range(stride):
                left = line[i - step] if i >= step else 0
                up, corner = previous[i], previous[i - step] if i >= step else 0
                if filter_type == 1:
                    line[i] = (line[i] + left) & 0xFF
                elif filter_type == 3:
                    line[i] = (line[i] + (left + up) // 2) & 0xFF
                else:
                    guess = left + up - corner
                    near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up),
                               (abs(guess - corner), 2, corner))[2]
                    line[i] = (line[i] + near) & 0xFF
        previous = bytes(line)
        counts.update(previous[i:i + 3] for i in range(0, stride, step))
    return Counter({"#" + k.hex(): n for k, n in counts.items()})


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The drill's HTML report, written where the browser can open it."""
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(html(after_action(frozen()[1], drill_log())), encoding="utf-8")
    return path


def test_the_chart_is_in_the_rendered_dom(page: Path, tmp_path: Path) -> None:
    """The browser's DOM holds the timeline SVG with a bar per done step and a planned mark."""
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert '<svg class="timeline" role="img"' in dom
    assert dom.count('class="actual"') == 17
    assert dom.count('class="planned"') == 21
    assert dom.count('class="missing"') == 2
    assert "<script" not in dom


def test_the_chart_is_drawn_in_its_colours(page: Path, tmp_path: Path) -> None:
    """A screenshot shows the planned, on-time and late colours well beyond the legend swatches."""
    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri())
    counts = colours(shot.read_bytes())
    # The legend alone has at most 22 x 10 pixels of each colour; the chart many more.
    assert counts[PLANNED] > 500
    assert counts[ON_TIME] > 500
    assert counts[LATE] > 500
    assert counts[BANNER_YELLOW] > 1280 * 20
