"""The checkout button image (img/mtgox-checkout.png), drawn and PNG-encoded in pure Python.

No imaging library: an RGBA pixel buffer, a 5x7 bitmap font for the few
letters needed, and the PNG chunks written with struct and zlib. The bytes
are the same on every run, so they are computed once and cached.
"""

from __future__ import annotations

import functools
import struct
import zlib

WIDTH, HEIGHT = 246, 40
RADIUS = 7
SCALE = 2
TEXT = "PAY WITH BITCOIN"

_GLYPHS = {
    "A": ("01110", "10001", "10001", "11111", "10001", "10001", "10001"),
    "B": ("11110", "10001", "10001", "11110", "10001", "10001", "11110"),
    "C": ("01110", "10001", "10000", "10000", "10000", "10001", "01110"),
    "H": ("10001", "10001", "10001", "11111", "10001", "10001", "10001"),
    "I": ("01110", "00100", "00100", "00100", "00100", "00100", "01110"),
    "N": ("10001", "11001", "10101", "10011", "10001", "10001", "10001"),
    "O": ("01110", "10001", "10001", "10001", "10001", "10001", "01110"),
    "P": ("11110", "10001", "10001", "11110", "10000", "10000", "10000"),
    "T": ("11111", "00100", "00100", "00100", "00100", "00100", "00100"),
    "W": ("10001", "10001", "10001", "10101", "10101", "10101", "01010"),
    "Y": ("10001", "10001", "01010", "00100", "00100", "00100", "00100"),
    " ": ("00000",) * 7,
}

Color = tuple[int, int, int, int]
TOP: Color = (252, 183, 72, 255)
BOTTOM: Color = (240, 136, 18, 255)
BORDER: Color = (176, 96, 8, 255)
INK: Color = (255, 255, 255, 255)
SHADOW: Color = (128, 64, 0, 255)
COIN: Color = (255, 255, 255, 255)
COIN_INK: Color = (240, 136, 18, 255)


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.rows = [bytearray(width * 4) for _ in range(height)]

    def put(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            self.rows[y][x * 4 : x * 4 + 4] = bytes(color)

    def png(self) -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            crc = zlib.crc32(kind + data) & 0xFFFFFFFF
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 6, 0, 0, 0)
        raw = b"".join(b"\x00" + bytes(row) for row in self.rows)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def _inside_rounded(x: int, y: int, width: int, height: int, radius: int) -> bool:
    cx = min(max(x, radius), width - 1 - radius)
    cy = min(max(y, radius), height - 1 - radius)
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius**2


def _blend(a: Color, b: Color, t: float) -> Color:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
        255,
    )


def _text(canvas: _Canvas, text: str, left: int, top: int, color: Color) -> None:
    for index, letter in enumerate(text):
        glyph = _GLYPHS[letter]
        origin = left + index * 6 * SCALE
        for row, bits in enumerate(glyph):
            for column, bit in enumerate(bits):
                if bit == "1":
                    for dy in range(SCALE):
                        for dx in range(SCALE):
                            canvas.put(origin + column * SCALE + dx, top + row * SCALE + dy, color)


@functools.cache
def checkout_png() -> bytes:
    """The PNG bytes of the "PAY WITH BITCOIN" checkout button."""
    canvas = _Canvas(WIDTH, HEIGHT)
    for y in range(HEIGHT):
        fill = _blend(TOP, BOTTOM, y / (HEIGHT - 1))
        for x in range(WIDTH):
            if not _inside_rounded(x, y, WIDTH, HEIGHT, RADIUS):
                continue
            edge = not (
                _inside_rounded(x - 1, y, WIDTH, HEIGHT, RADIUS)
                and _inside_rounded(x + 1, y, WIDTH, HEIGHT, RADIUS)
                and _inside_rounded(x, y - 1, WIDTH, HEIGHT, RADIUS)
                and _inside_rounded(x, y + 1, WIDTH, HEIGHT, RADIUS)
            )
            canvas.put(x, y, BORDER if edge else fill)
    # A coin with a B on the left.
    cx, cy, r = 20, HEIGHT // 2, 12
    for y in range(cy - r, cy + r + 1):
        for x in range(cx - r, cx + r + 1):
            if (x - cx) ** 2 + (y - cy) ** 2 <= r * r:
                canvas.put(x, y, COIN)
    _text(canvas, "B", cx - 5, cy - 7, COIN_INK)
    text_top = (HEIGHT - 7 * SCALE) // 2
    _text(canvas, TEXT, 42 + 1, text_top + 1, SHADOW)
    _text(canvas, TEXT, 42, text_top, INK)
    return canvas.png()
