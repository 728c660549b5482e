"""Browser fixtures for the phone page: Debian's Chromium driven by Playwright (sync API).

Never downloads a browser: it launches /usr/bin/chromium. Each test gets the running pair
(rules + booking over gRPC), the phone page on a real port, and a 360 × 740 phone-sized
page with JavaScript switched off (the phone page must work without it).
"""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from services.booking.entrypoints.web import create_web_app
from services.common.http_server import HttpServer, start_http
from tests.booking_env import Pair, running_pair

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 360, "height": 740}


@dataclass
class Live:
    pair: Pair
    http: HttpServer

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http.port}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    with running_pair(tmp_path) as pair:
        http = start_http(create_web_app(pair.ctx, pair.booking_engine))
        try:
            yield Live(pair, http)
        finally:
            http.stop()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A phone-sized page, JavaScript off."""
    context = browser.new_context(
        viewport={"width": PHONE["width"], "height": PHONE["height"]},
        java_script_enabled=False,
        locale="zh-CN",
        device_scale_factor=1,
    )
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def desk(browser: Browser) -> Iterator[Page]:
    """A page big enough for an A4 poster at 96 dpi."""
    context = browser.new_context(
        viewport={"width": 800, "height": 1130}, java_script_enabled=False, device_scale_factor=1
    )
    try:
        yield context.new_page()
    finally:
        context.close()


# ---------------------------------------------------------------- PNG in and out


def make_png(width: int = 8, height: int = 8, rgb: tuple[int, int, int] = (30, 160, 60)) -> bytes:
    """A small, valid PNG (8-bit RGB, filter 0 rows), built with zlib and struct."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def png_to_gray(png: bytes) -> tuple[bytearray, int, int]:
    """Decode an 8-bit RGB/RGBA/gray, non-interlaced PNG (what Chromium's screenshots are)
    into grayscale bytes, row by row. No Pillow or numpy in this environment."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data)
            assert depth == 8 and interlace == 0, "only 8-bit, non-interlaced PNGs"
            channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += data
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    gray = bytearray(width * height)
    offset = 0
    for y in range(height):
        method, line = raw[offset], bytearray(raw[offset + 1 : offset + 1 + stride])
        offset += 1 + stride
        _unfilter(method, line, previous, channels)
        for x in range(width):
            p = x * channels
            gray[y * width + x] = (
                line[p]
                if channels < 3
                else ((line[p] * 299 + line[p + 1] * 587 + line[p + 2] * 114) // 1000)
            )
        previous = line
    return gray, width, height


def _unfilter(kind: int, line: bytearray, prev: bytearray, bpp: int) -> None:
    if kind == 0:
        return
    n = len(line)
    if kind == 1:
        for i in range(bpp, n):
            line[i] = (line[i] + line[i - bpp]) & 0xFF
    elif kind == 2:
        for i in range(n):
            line[i] = (line[i] + prev[i]) & 0xFF
    elif kind == 3:
        for i in range(n):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(n):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line[i] = (line[i] + pred) & 0xFF
    else:
        raise ValueError(f"unknown PNG filter {kind}")
