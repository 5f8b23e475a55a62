"""The raw body of a request, whole and bounded, whether it has a Content-Length or is chunked.

Django's `request.body` reads CONTENT_LENGTH bytes, so a body sent with
`Transfer-Encoding: chunked` and no Content-Length (as `requests` sends a
generator, or curl with that header) reads as empty. gunicorn de-chunks
`wsgi.input` and says so with `wsgi.input_terminated` (the stream ends where
the body ends): such a body is read from it, at most `limit + 1` bytes, so an
oversized one is refused without holding more than that in memory. A WSGI
server that passes the chunks through undecoded (Django's runserver) cannot
be read that way: the request is refused as needing a length. Under ASGI
Django has spooled the body already and `request.body` holds it all.
"""

from __future__ import annotations

from django.http import HttpRequest

from payments.exceptions import BodyTooLarge, LengthRequired


def _has_length(request: HttpRequest, limit: int) -> bool:
    """True when a Content-Length is given; BodyTooLarge when it is over `limit` or not one."""
    declared = request.META.get("CONTENT_LENGTH")
    if declared in (None, ""):
        return False
    if not (declared.isascii() and declared.isdigit()) or int(declared) > limit:
        raise BodyTooLarge(limit)
    return True


def _chunked(request: HttpRequest) -> bool:
    return "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()


def read_body(request: HttpRequest, *, limit: int) -> bytes:
    """The request's raw body bytes: BodyTooLarge over `limit`, LengthRequired when unreadable."""
    stream = request.META.get("wsgi.input")
    if not _has_length(request, limit) and _chunked(request) and stream is not None:
        if not request.META.get("wsgi.input_terminated"):
            raise LengthRequired("a chunked body needs a server that decodes it")
        # From here on request.body (and request.POST) are these bytes, not the empty
        # CONTENT_LENGTH-bounded read Django would make.
        request._body = stream.read(limit + 1)
    body = request.body
    if len(body) > limit:
        raise BodyTooLarge(limit)
    return body
