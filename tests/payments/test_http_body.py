"""payments.http_body.read_body: the raw body however it is framed, never past its limit.

tests/faults/test_chunked_bodies.py sends chunked bodies to a real gunicorn;
these pin what the WSGI environ alone decides (how much of an endless chunked
stream is read, a Content-Length that is not one) and what a server that hands
the chunks over undecoded (runserver) gets: 411.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import requests
from django.core.handlers.wsgi import WSGIRequest
from django.test import Client, RequestFactory

from payments.exceptions import BodyTooLarge, LengthRequired
from payments.http_body import read_body
from payments.models import Notification, RejectedNotification

LIMIT = 100


class EndlessStream:
    """A de-chunked wsgi.input that never ends, counting what was asked of it."""

    def __init__(self) -> None:
        self.requested = 0

    def read(self, size: int = -1) -> bytes:
        assert size >= 0, "read the whole of an endless stream"
        self.requested += size
        assert self.requested <= LIMIT + 1, f"read {self.requested} bytes for a {LIMIT} limit"
        return b"x" * size

    def readline(self, size: int = -1) -> bytes:
        raise AssertionError("a body is read whole, not by lines")


def chunked_request(stream: Any, *, terminated: bool = True) -> WSGIRequest:
    extra: dict[str, Any] = {"wsgi.input": stream, "HTTP_TRANSFER_ENCODING": "chunked"}
    if terminated:
        extra["wsgi.input_terminated"] = True  # gunicorn: the stream ends with the body
    return RequestFactory().generic("POST", "/", b"", **extra)


def test_a_chunked_body_is_read_whole_and_becomes_request_body() -> None:
    request = chunked_request(io.BytesIO(b"a=1&b=2"))

    assert read_body(request, limit=LIMIT) == b"a=1&b=2"
    assert request.body == b"a=1&b=2"


def test_a_chunked_body_at_the_limit_is_read() -> None:
    assert read_body(chunked_request(io.BytesIO(b"y" * LIMIT)), limit=LIMIT) == b"y" * LIMIT


def test_an_endless_chunked_body_is_refused_after_limit_plus_one_bytes() -> None:
    stream = EndlessStream()

    with pytest.raises(BodyTooLarge):
        read_body(chunked_request(stream), limit=LIMIT)
    assert stream.requested == LIMIT + 1


def test_chunked_on_a_server_that_does_not_decode_it_needs_a_length() -> None:
    stream = EndlessStream()

    with pytest.raises(LengthRequired):
        read_body(chunked_request(stream, terminated=False), limit=LIMIT)
    assert stream.requested == 0


def test_a_content_length_body_is_read_as_django_reads_it() -> None:
    request = RequestFactory().post("/", b"a=1", content_type="application/x-www-form-urlencoded")

    assert read_body(request, limit=LIMIT) == b"a=1"


@pytest.mark.parametrize("length", [str(LIMIT + 1), "abc", "-5", "1e3", " 5", "\u0665"])
def test_a_content_length_over_the_limit_or_not_a_length_is_refused(length: str) -> None:
    request = RequestFactory().post("/", b"a=1", content_type="text/plain", CONTENT_LENGTH=length)

    with pytest.raises(BodyTooLarge):
        read_body(request, limit=LIMIT)


def test_no_body_at_all_is_empty() -> None:
    assert read_body(RequestFactory().generic("POST", "/"), limit=LIMIT) == b""


def undecoded_chunks() -> dict[str, Any]:
    """The environ of a server that hands a chunked body over as it came (runserver)."""
    return {"wsgi.input": EndlessStream(), "HTTP_TRANSFER_ENCODING": "chunked"}


@pytest.mark.django_db(transaction=True)
def test_the_ipn_endpoint_answers_411_to_chunks_runserver_cannot_decode(live_server: Any) -> None:
    # live_server is Django's own WSGI server, runserver's: it passes chunks through.
    response = requests.post(
        f"{live_server.url}/payments/ipn/", data=iter([b"id=1", b"&status=paid"]), timeout=30
    )

    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 411
    assert not Notification.objects.exists() and not RejectedNotification.objects.exists()


@pytest.mark.django_db
def test_the_sandbox_answers_411_to_chunks_it_cannot_decode(client: Client) -> None:
    response = client.generic(
        "POST",
        "/sandbox/api/1/generic/private/info",
        b"",
        headers={"User-Agent": "t"},
        **undecoded_chunks(),
    )

    assert response.status_code == 411
    assert response.json()["token"] == "length_required"
