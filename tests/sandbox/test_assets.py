"""The checkout button's assets: button.min.js and img/mtgox-checkout.png."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib

import pytest
from django.test import Client

from sandbox.views import BUTTON_JS


def test_button_js_is_served_as_javascript(client: Client) -> None:
    response = client.get("/sandbox/js/button.min.js")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    script = response.content.decode()
    assert "span.mtgox" in script
    assert "data-amount" in script and "data-currency" in script
    assert "preventDefault" not in script  # the plain link keeps working
    assert "innerHTML" not in script  # data attributes are shown as text only


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    found, offset = [], 8
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        data = png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF, kind
        found.append((kind, data))
        offset += 12 + length
    return found


def test_checkout_png_is_a_real_png(client: Client) -> None:
    response = client.get("/sandbox/img/mtgox-checkout.png")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    parsed = chunks(response.content)
    assert [kind for kind, _ in parsed] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", parsed[0][1])
    assert (depth, colour) == (8, 6)  # 8-bit RGBA
    assert 100 <= width <= 400 and 20 <= height <= 80
    raw = zlib.decompress(parsed[1][1])
    assert len(raw) == height * (1 + width * 4)
    # Transparent corner, opaque middle, more than one colour drawn.
    row = 1 + width * 4
    assert raw[1 + 3] == 0
    middle = raw[(height // 2) * row + 1 : (height // 2 + 1) * row]
    assert all(middle[i + 3] == 255 for i in range(8 * 4, (width - 8) * 4, 4))
    assert len({bytes(middle[i : i + 4]) for i in range(0, len(middle), 4)}) > 2


NODE_FAKE_DOM = r"""
const fs = require("fs");
function el(tag, attrs) {
  const node = {tagName: tag, attrs: Object.assign({}, attrs || {}), children: [], className: "",
    textContent: "",
    getAttribute(n) { return n in this.attrs ? this.attrs[n] : null; },
    setAttribute(n, v) { this.attrs[n] = String(v); },
    appendChild(c) { this.children.push(c); return c; },
    getElementsByTagName(t) { return this.children.filter(c => c.tagName === t); }};
  return node;
}
const link = el("a", {href: "http://pay.example/TXID"});
const span = el("span", {"data-amount": "12.50", "data-currency": "USD"});
span.className = "mtgox"; span.appendChild(link);
const head = el("head");
const document = {readyState: "complete", head,
  getElementById(id) { return head.children.find(c => c.id === id) || null; },
  createElement: (t) => el(t),
  createTextNode: (text) => ({text}),
  querySelectorAll: (sel) => sel === "span.mtgox" ? [span] : []};
const window = {};
new Function("window", "document", fs.readFileSync(process.argv[1], "utf8"))(window, document);
window.MtGoxButton.refresh();  // idempotent
const labels = span.children.filter(c => c.className === "mtgox-amount");
console.log(JSON.stringify({
  cls: span.className, href: link.attrs.href, title: link.attrs.title,
  labels: labels.map(l => l.children[0].text), styles: head.children.length}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_button_js_enhances_the_span_and_keeps_the_link() -> None:
    result = subprocess.run(
        ["node", "-e", NODE_FAKE_DOM, str(BUTTON_JS)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    outcome = json.loads(result.stdout)
    assert outcome["href"] == "http://pay.example/TXID"
    assert "mtgox-enhanced" in outcome["cls"]
    assert outcome["title"] == "Pay 12.50 USD with bitcoin"
    assert outcome["labels"] == ["12.50 USD"]  # once, even when run twice
    assert outcome["styles"] == 1
