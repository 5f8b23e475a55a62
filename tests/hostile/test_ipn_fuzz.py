"""Property-based fuzzing of POST /payments/ipn/ with hypothesis.

Three properties, each over generated requests sent through the whole
Django stack (middleware included):

1. Anything not signed with the merchant's key and secret (random bodies,
   headers missing, wrong, non-base64 or huge, another method, any content
   type, sizes around the 64 KiB limit) is answered exactly 405, 413 or 403,
   never 500, and changes no order, payment, transition, flag or stored
   notification; a 403 is counted in RejectedNotification.
2. A body that is validly signed but malformed (a defect applied to an
   otherwise well-formed notification of a real order: a duplicate or
   missing field, junk in a checked field, non-UTF-8 bytes, or random bytes)
   is stored byte for byte, marked `invalid` and answered `[OK]` (the
   protocol decision in docs/gateway-contract.md and payments/ipn.py), and
   changes no order.
3. Validly signed, well-formed notifications with fuzzed values for orders
   in every state are always answered `[OK]`, and a paid order stays paid.

Each property runs a fixed number of examples (`EXAMPLES`); the counts are
printed at the end of the run (conftest.pytest_terminal_summary).
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, urlencode

import pytest
from django.conf import settings as django_settings
from django.db.models import Sum
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from payments.gateway.signing import sign
from payments.ipn import MAX_BODY_BYTES
from payments.models import Notification, Order, RejectedNotification
from payments.money import CURRENCIES, MAX_AMOUNT_INT
from payments.states import OrderStatus
from payments.testing import ipn_body, post_ipn
from tests.hostile.conftest import fingerprint
from tests.hostile.fuzzlog import count

pytestmark = pytest.mark.django_db

IPN = "/payments/ipn/"
OTHER_SECRET = base64.b64encode(b"another merchant's secret, not ours" * 2).decode()
EXAMPLES = {"unsigned": 300, "malformed": 200, "well_formed": 80}


def fuzz_settings(examples: int) -> Any:
    return hypothesis_settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )


# --- strategies -------------------------------------------------------------------------

FIELD_NAMES = (
    "id", "payment_id", "status", "amount", "currency", "method", "date", "data",
    "amount_pending", "amount_valid", "amount_total",
)  # fmt: skip
odd_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40
) | st.sampled_from(
    ["", "\x00", "paid\x00", "%00", "%FF%FE", "\u202e", "١٢٣", "🙂", "a" * 5000, "=&=&", "+ +"]
)
field_value = st.one_of(
    odd_text,
    st.sampled_from(["paid", "partial", "cancelled", "closed", "PAID", "BTC", "MTGOXBTC"]),
    st.integers(-(10**30), 10**30).map(str),
    st.uuids().map(str),
)


def form(pairs: list[tuple[str, str]], encoding: str) -> bytes:
    return urlencode(pairs, encoding=encoding, errors="replace").encode("ascii")


form_bodies = st.builds(
    form,
    st.lists(st.tuples(st.sampled_from(FIELD_NAMES) | odd_text, field_value), max_size=12),
    st.sampled_from(["utf-8", "latin-1", "utf-16", "cp1252"]),
)
raw_bodies = st.binary(max_size=2048)
nul_bodies = st.builds(
    lambda body, at: body[:at] + b"\x00" + body[at:], form_bodies, st.integers(0, 200)
)
# Sizes around the limit: exactly at it is read and verified, one byte more is 413.
sized_bodies = st.integers(MAX_BODY_BYTES - 3, MAX_BODY_BYTES + 3).map(
    lambda n: (b"status=paid&data=" + b"x" * n)[:n]
)
huge_bodies = st.integers(MAX_BODY_BYTES + 1, 3 * 1024 * 1024).map(lambda n: b"A" * n)
any_body = st.one_of(form_bodies, raw_bodies, nul_bodies, sized_bodies, huge_bodies)

CONTENT_TYPES = (
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "application/json",
    "text/plain; charset=utf-16",
    "application/octet-stream",
    "garbage/;;;=",
    "",
)
METHODS = ("POST", "POST", "POST", "POST", "GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")


def wrong_key(right: str) -> st.SearchStrategy[str | None]:
    variants = st.one_of(
        st.none(),
        st.just(""),
        st.just(right.upper()),
        st.just(right + " "),
        st.just(" " + right),
        st.just(right[:-1]),
        st.uuids().map(str),
        odd_text,
        st.just("k" * 100_000),
    )
    return variants.filter(lambda key: key != right)


@st.composite
def forged_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A request that is not signed with our key and secret over its body."""
    key, secret = django_settings.GATEWAY_API_KEY, django_settings.GATEWAY_API_SECRET
    body = draw(any_body)
    # Either a wrong key (with any Rest-Sign, even a valid one) or our key with a bad Rest-Sign.
    if draw(st.booleans()):
        rest_key = draw(wrong_key(key))
        rest_sign: str | None = draw(
            st.one_of(st.none(), st.just(sign(body, secret)), st.text(max_size=90))
        )
    else:
        rest_key = key
        rest_sign = draw(
            st.one_of(
                st.none(),
                st.just(""),
                st.just("not base64!"),
                odd_text,
                st.binary(min_size=64, max_size=64).map(lambda b: base64.b64encode(b).decode()),
                st.just(sign(body, OTHER_SECRET)),
                st.just(sign(body + b"\n", secret)),
                st.just(sign(body[:-1], secret)) if body else st.just(sign(b"x", secret)),
                st.just(sign(body, secret)[:-4]),
                st.just(sign(body, secret).rstrip("=")),
                st.just("A" * 200_000),
            )
        )
    headers = {}
    if rest_key is not None:
        headers["Rest-Key"] = rest_key
    if rest_sign is not None:
        headers["Rest-Sign"] = rest_sign
    headers.update(
        draw(
            st.dictionaries(st.sampled_from(["User-Agent", "X-Forwarded-For", "Cookie"]), odd_text)
        )
    )
    # A WSGI server hands header bytes over decoded as latin-1 (PEP 3333): do the same.
    headers = {name: value.encode().decode("latin-1") for name, value in headers.items()}
    return {
        "method": draw(st.sampled_from(METHODS)),
        "body": body,
        "content_type": draw(st.sampled_from(CONTENT_TYPES)),
        "headers": headers,
    }


def rejected_total() -> int:
    return int(RejectedNotification.objects.aggregate(n=Sum("count"))["n"] or 0)


def seed_orders(make_order: Callable[..., Order], client: Client) -> list[Order]:
    """One order in each state, two of them paid through a real notification."""
    orders = [
        make_order(status=status, data=data, multipay=multipay, currency=currency)
        for status, data, multipay, currency in (
            (OrderStatus.AWAITING_PAYMENT, "", False, "BTC"),
            (OrderStatus.AWAITING_PAYMENT, "order=42", True, "USD"),
            (OrderStatus.CONFIRMING, "", False, "BTC"),
            (OrderStatus.CANCELLED, "", False, "BTC"),
            (OrderStatus.EXPIRED, "", False, "BTC"),
        )
    ]
    for multipay in (False, True):
        paid = make_order(multipay=multipay)
        body = ipn_body(transaction=paid.transaction, status="paid", amount_int=paid.amount_int)
        assert post_ipn(client, body).content == b"[OK]"
        paid.refresh_from_db()
        assert paid.status == OrderStatus.PAID
        orders.append(paid)
    return orders


# --- 1. anything unsigned or forged ------------------------------------------------------


def test_forged_or_unsigned_requests_are_refused_and_change_nothing(
    client: Client, make_order: Callable[..., Order]
) -> None:
    seed_orders(make_order, client)

    @fuzz_settings(EXAMPLES["unsigned"])
    @given(request=forged_requests())
    def run(request: dict[str, Any]) -> None:
        count("ipn: forged or unsigned (hypothesis examples)")
        before, rejected_before = fingerprint(), rejected_total()
        body: bytes = request["body"]

        response = client.generic(
            request["method"],
            IPN,
            data=body,
            content_type=request["content_type"],
            headers=request["headers"],
        )

        if request["method"] != "POST":
            expected = 405
        elif len(body) > MAX_BODY_BYTES:
            expected = 413
        else:
            expected = 403
        assert response.status_code == expected, (response.status_code, response.content[:300])
        assert response.content != b"[OK]"
        assert fingerprint() == before
        # README: a forged or unsigned request "is counted per minute and sender".
        assert rejected_total() == rejected_before + (1 if expected == 403 else 0)

    run()


def test_a_body_exactly_at_the_limit_is_verified_and_one_byte_more_is_413(client: Client) -> None:
    at_limit = b"status=paid&data=" + b"x" * (MAX_BODY_BYTES - 17)
    assert len(at_limit) == MAX_BODY_BYTES
    assert post_ipn(client, at_limit).content == b"[OK]"
    assert bytes(Notification.objects.get().body) == at_limit
    over = at_limit + b"x"
    assert post_ipn(client, over).status_code == 413
    assert Notification.objects.count() == 1


@pytest.mark.parametrize("length", ["abc", "-5", "1e3", " 5", "99999999999999999999999"])
def test_an_odd_content_length_header_is_never_a_500(client: Client, length: str) -> None:
    body = b"status=paid"
    response = client.post(
        IPN,
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers={"Rest-Key": django_settings.GATEWAY_API_KEY, "Rest-Sign": "x"},
        CONTENT_LENGTH=length,
    )
    assert response.status_code in (403, 413), response.status_code
    assert not Notification.objects.exists()


# --- 2. signed but malformed ---------------------------------------------------------------

DIGITS = re.compile(r"[0-9]{1,19}")


def not_a_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return True
    return False


def not_an_amount(text: str) -> bool:
    return not DIGITS.fullmatch(text) or int(text) > MAX_AMOUNT_INT


def not_a_date(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return True
    return False


JUNK: dict[str, st.SearchStrategy[str]] = {
    "id": field_value.filter(not_a_uuid),
    "payment_id": field_value.filter(not_a_uuid),
    "status": field_value.filter(lambda s: s not in ("paid", "partial", "cancelled", "closed")),
    "amount": (
        st.sampled_from(["-1", "1.5", "1e3", "١٢٣", str(MAX_AMOUNT_INT + 1), " 1", "0x10", ""])
        | field_value.filter(not_an_amount)
    ),
    "currency": field_value.filter(lambda s: s not in CURRENCIES),
    "date": (
        st.sampled_from(["2012-13-01 00:00:00", "2012-10-13T12:55:45", "yesterday", ""])
        | field_value.filter(not_a_date)
    ),
}
JUNK["amount_pending"] = JUNK["amount_valid"] = JUNK["amount_total"] = JUNK["amount"]
REQUIRED = {
    "paid": ("id", "payment_id", "status", "amount", "currency"),
    "partial": ("id", "payment_id", "status", "amount_pending", "amount_valid", "amount_total"),
    "cancelled": ("id", "payment_id", "status"),
    "closed": ("id", "payment_id", "status"),
}
CHECKED = {
    "paid": (*REQUIRED["paid"], "date"),
    "partial": REQUIRED["partial"],
    "cancelled": REQUIRED["cancelled"],
    "closed": REQUIRED["closed"],
}


@st.composite
def malformed_bodies(draw: st.DrawFn, orders: list[Order]) -> bytes:
    """A notification of a real order, well-formed but for one defect that makes it unreadable."""
    order = draw(st.sampled_from(orders))
    status = draw(st.sampled_from(sorted(REQUIRED)))
    amount = draw(st.integers(1, 10**12))
    good = ipn_body(
        transaction=order.transaction,
        status=status,
        amount_int=amount,
        amount_valid=amount,
        data=order.data or None,
    )
    pairs = [tuple(pair.split("=", 1)) for pair in good.decode().split("&")]
    defect = draw(
        st.sampled_from(["duplicate", "missing", "junk", "non_utf8_raw", "non_utf8_escaped", "raw"])
    )
    if defect == "raw":
        return draw(raw_bodies.filter(lambda b: b"status=" not in b))
    if defect == "duplicate":
        name, value = draw(st.sampled_from(pairs))
        again = draw(st.sampled_from([value, quote_plus(draw(field_value))]))
        pairs.insert(draw(st.integers(0, len(pairs))), (name, again))
    elif defect == "missing":
        name = draw(st.sampled_from(REQUIRED[status]))
        pairs = [pair for pair in pairs if pair[0] != name]
    elif defect == "junk":
        name = draw(st.sampled_from(CHECKED[status]))
        junk = quote_plus(draw(JUNK[name]))
        pairs = [pair for pair in pairs if pair[0] != name]
        pairs.insert(draw(st.integers(0, len(pairs))), (name, junk))
    body = "&".join(f"{name}={value}" for name, value in pairs).encode()
    if defect == "non_utf8_raw":
        at = draw(st.integers(0, len(body)))
        return (
            body[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"])) + body[at:]
        )
    if defect == "non_utf8_escaped":
        return body + b"&data=%FF%FE"
    return body


def test_signed_malformed_bodies_are_stored_acknowledged_and_change_no_order(
    client: Client, make_order: Callable[..., Order]
) -> None:
    orders = seed_orders(make_order, client)

    @fuzz_settings(EXAMPLES["malformed"])
    @given(body=malformed_bodies(orders))
    def run(body: bytes) -> None:
        count("ipn: signed but malformed (hypothesis examples)")
        before = fingerprint()

        response = post_ipn(client, body)

        assert response.status_code == 200, (response.status_code, response.content[:300])
        assert response.content == b"[OK]"
        stored = Notification.objects.get(body_sha256=hashlib.sha256(body).hexdigest())
        assert bytes(stored.body) == body
        assert stored.outcome == Notification.Outcome.INVALID, (stored.outcome, stored.detail)
        assert stored.needs_review is True
        after = fingerprint()
        for unchanged in ("orders", "payments", "transitions", "flags"):
            assert after[unchanged] == before[unchanged], unchanged
        assert after["receipts"] == before["receipts"] + 1

    run()


# --- 3. signed, well-formed, fuzzed values ---------------------------------------------------

PAYMENT_POOL = [uuid.UUID(int=n) for n in range(1, 5)]  # shared: ids of other orders' payments


@st.composite
def notifications_for(draw: st.DrawFn, orders: list[Order]) -> list[bytes]:
    bodies = []
    for _ in range(draw(st.integers(1, 6))):
        order = draw(st.sampled_from(orders))
        due = order.amount_int
        amount = st.one_of(
            st.sampled_from([0, 1, due - 1, due, due + 1, due * 2, MAX_AMOUNT_INT]),
            st.integers(0, MAX_AMOUNT_INT),
        )
        status = draw(st.sampled_from(["paid", "partial", "cancelled", "closed"]))
        bodies.append(
            ipn_body(
                transaction=order.transaction,
                status=status,
                payment_id=draw(st.sampled_from(PAYMENT_POOL) | st.uuids()),
                amount_int=draw(amount),
                currency=draw(st.sampled_from(["BTC", "BTC", order.currency, *CURRENCIES])),
                method=draw(st.sampled_from(["MTGOXBTC", "", "x" * 40])),
                date=draw(
                    st.datetimes(
                        min_value=datetime(1970, 1, 2),
                        max_value=datetime(9999, 12, 30),
                        timezones=st.just(UTC),
                    )
                ),
                amount_pending=draw(amount),
                amount_valid=draw(amount),
                amount_total=draw(st.none() | amount),
                data=draw(st.sampled_from([order.data or None, order.data, "other", None])),
            )
        )
    return bodies


def test_signed_well_formed_notifications_never_move_a_paid_order_backwards(
    client: Client, make_order: Callable[..., Order]
) -> None:
    @fuzz_settings(EXAMPLES["well_formed"])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        count("ipn: signed well-formed sequences (hypothesis examples)")
        orders = seed_orders(make_order, client)  # fresh orders in every state, each example
        ids = [order.pk for order in orders]
        paid = {order.pk for order in orders if order.status == OrderStatus.PAID}
        left_awaiting = {o.pk for o in orders if o.status != OrderStatus.AWAITING_PAYMENT}
        for body in data.draw(notifications_for(orders)):
            count("ipn: signed well-formed notifications posted")
            response = post_ipn(client, body)
            assert response.status_code == 200, (response.status_code, response.content[:300])
            assert response.content == b"[OK]"
            now = dict(Order.objects.filter(pk__in=ids).values_list("pk", "status"))
            for pk in paid:
                assert now[pk] == OrderStatus.PAID, (now[pk], body)
            for pk in left_awaiting:
                assert now[pk] != OrderStatus.AWAITING_PAYMENT, body
            paid |= {pk for pk, status in now.items() if status == OrderStatus.PAID}
            left_awaiting |= {pk for pk, s in now.items() if s != OrderStatus.AWAITING_PAYMENT}

    run()


@pytest.mark.parametrize("reason_headers", [{}, {"Rest-Sign": "bm90IGl0"}])
def test_a_forged_body_with_nul_bytes_is_counted(
    client: Client, reason_headers: dict[str, str]
) -> None:
    """The first forgery of a minute stores a sample of its body: NUL bytes must not lose it."""
    headers = {"Rest-Key": django_settings.GATEWAY_API_KEY, **reason_headers}
    body = b"status=paid&id=\x00\x00&data=\x00"
    response = client.post(
        IPN, data=body, content_type="application/x-www-form-urlencoded", headers=headers
    )
    assert response.status_code == 403
    audit = RejectedNotification.objects.get()
    assert audit.count == 1
    assert audit.sample.startswith("status=paid&id=")
