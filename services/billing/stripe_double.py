"""A Stripe stand-in for the tests and the offline demo: localstripe, with what it lacks in front of it.

`localstripe <https://pypi.org/project/localstripe/>`_ is a stateful fake Stripe server (customers, payment methods
with Stripe's test cards, PaymentIntents with 3-D Secure and off-session confirmation, refunds, balance
transactions, signed webhooks) that the official ``stripe`` library talks to through its base address. This module
runs localstripe's own aiohttp application with a few middlewares of ours in front, for what billing needs and
localstripe does not do:

- **Idempotency keys as Stripe keeps them**: the first answer to a POST with an ``Idempotency-Key`` is kept and
  replayed for the same key (``Idempotent-Replayed: true``); the same key with other parameters is a 400
  ``idempotency_error``; the same key while the first request still runs is a 409.
- **Fault injection** (``POST /_config/double/faults``): an HTTP 500 before anything is done, a hang past the
  client's timeout (the request is carried out late), or a request carried out whose answer is lost (the
  connection is dropped after the work is done).
- **Webhook delivery as Stripe may do it** (``POST /_config/double/webhooks``): each event delivered several times,
  a burst of events delivered newest first, and a delivery the endpoint did not take (no 2xx, no answer) tried
  again with growing waits, as Stripe retries. Targets are registered as localstripe does
  (``POST /_config/webhooks/{id}`` with ``url`` and ``secret``); payloads are signed as Stripe signs them.
- **PaymentIntent parameters localstripe refuses**: ``setup_future_usage`` (the card is attached to the customer,
  so a card Stripe declines on saving is declined here too), confirming with a (new) ``payment_method`` after a
  decline or an abandoned challenge, an off-session confirmation that needs 3-D Secure
  fails with ``authentication_required`` as Stripe answers it, and Stripe's documented test payment method ids
  (``pm_card_threeDSecure2Required``...) become saved payment methods with a stable id.
- **Events localstripe does not send**: ``charge.refunded`` after a refund, ``charge.dispute.created`` on demand
  (``POST /_config/double/disputes`` with ``charge``).

Run: ``python -m services.billing.stripe_double --port 8420 [--host 127.0.0.1] [--state FILE] [--webhook-url URL
(--webhook-secret S | --webhook-secret-file PATH)]``. Point the
``stripe`` library at ``http://127.0.0.1:8420`` with any ``sk_test_...`` key. localstripe is GPL-3.0; it runs as
this separate process and no service imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import pickle
import re
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from localstripe import resources, server, webhooks
from localstripe.errors import UserError
from localstripe.resources import Charge, Event, PaymentIntent, PaymentMethod, random_id, store

log = logging.getLogger("stripe_double")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Stripe's documented test payment method ids, by the test card number that behaves the same in localstripe.
TEST_PAYMENT_METHODS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_authenticationRequired": "4000002760003184",
}
_IDEMPOTENCY = "double-idempotency:"
_CONFIRM = re.compile(r"^/v1/payment_intents/(?P<id>pi_\w+)/confirm$")
_in_flight: set[str] = set()
_faults: list[dict[str, Any]] = []
_delivery = {"duplicates": 1, "newest_first": False, "batch_seconds": 0.2, "retries": 8, "retry_seconds": 1.0}
_pending_events: list[Event] = []


def stripe_error(status: int, error_type: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"type": error_type, "message": message, **extra}}, status=status)


# --- idempotency -------------------------------------------------------------------------------------------


@web.middleware
async def idempotency(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key or not request.path.startswith("/v1/"):
        return await handler(request)
    scope = _IDEMPOTENCY + hashlib.sha256(f"{request.headers.get('Authorization')}|{key}".encode()).hexdigest()
    fingerprint = hashlib.sha256(request.path.encode() + b"?" + await request.read()).hexdigest()
    kept = store.get(scope)
    if kept is not None:
        if kept["fingerprint"] != fingerprint:
            return stripe_error(400, "idempotency_error",
                                "Keys for idempotent requests can only be used with the same parameters they were "
                                f"first used with. Try using a key other than '{key}' if you meant to execute a "
                                "different request.")
        return web.Response(status=kept["status"], body=kept["body"], content_type="application/json",
                            headers={"Idempotent-Replayed": "true", "Idempotency-Key": key})
    if scope in _in_flight:
        return stripe_error(409, "idempotency_error", "There is currently another in-progress request using this "
                                                      "Stripe API key and idempotency key.")
    _in_flight.add(scope)
    try:
        response = await handler(request)
    finally:
        _in_flight.discard(scope)
    if isinstance(response, web.Response) and response.status < 500:
        store[scope] = {"fingerprint": fingerprint, "status": response.status, "body": response.body}
    return response


# --- faults ------------------------------------------------------------------------------------------------


def _take_fault(request: web.Request) -> dict[str, Any] | None:
    for fault in _faults:
        if fault["method"] == request.method and request.path.startswith(fault["path"]):
            fault["times"] -= 1
            if fault["times"] <= 0:
                _faults.remove(fault)
            return fault
    return None


@web.middleware
async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    fault = _take_fault(request) if request.path.startswith("/v1/") else None
    if fault is None:
        return await handler(request)
    log.info("injecting %s into %s %s", fault["kind"], request.method, request.path)
    if fault["kind"] == "error":
        return stripe_error(500, "api_error", "An injected error: nothing was done.")
    if fault["kind"] == "hang":
        await asyncio.sleep(fault["seconds"])
        return await handler(request)
    response = await handler(request)  # "lose_answer": the work is done, the answer never arrives
    if request.transport is not None:
        request.transport.abort()
    return response


async def configure_faults(request: web.Request) -> web.Response:
    """``{"method": "POST", "path": "/v1/payment_intents", "kind": "error|hang|lose_answer", "times": 1,
    "seconds": 30}``; ``DELETE`` clears them."""
    if request.method == "DELETE":
        _faults.clear()
        return web.json_response({"faults": []})
    fault = await request.json()
    if fault.get("kind") not in ("error", "hang", "lose_answer") or not str(fault.get("path", "")).startswith("/v1/"):
        return stripe_error(400, "invalid_request_error", "kind must be error, hang or lose_answer; path /v1/...")
    _faults.append({"method": fault.get("method", "POST"), "path": fault["path"], "kind": fault["kind"],
                    "times": int(fault.get("times", 1)), "seconds": float(fault.get("seconds", 30))})
    return web.json_response({"faults": _faults})


# --- PaymentIntents: what localstripe refuses ---------------------------------------------------------------


def saved_payment_method(payment_method: str | None) -> str | None:
    """A Stripe test payment method id as a real payment method of the stand-in (with a stable id)."""
    number = TEST_PAYMENT_METHODS.get(payment_method or "")
    if number is None:
        return payment_method
    card = {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}
    return PaymentMethod(type="card", card=card).id


def _setup_usage(data: dict[str, Any]) -> str | None:
    usage = data.pop("setup_future_usage", None)
    if usage not in (None, "on_session", "off_session"):
        raise UserError(400, "Invalid setup_future_usage", {"param": "setup_future_usage"})
    return usage


def _save_card(intent_customer: str | None, payment_method: str | None, usage: str | None) -> None:
    """Stripe saves the card to the customer when ``setup_future_usage`` is set; a card it would decline on
    saving is declined here too."""
    if usage and intent_customer and payment_method:
        PaymentMethod._api_attach(payment_method, customer=intent_customer)


def _answer(intent: PaymentIntent, off_session: bool | None, expand: Any) -> web.Response:
    if off_session is True and intent.status == "requires_action":
        intent.next_action = None
        intent.payment_method = None
        intent._authentication_failed = True
        resources.schedule_webhook(Event("payment_intent.payment_failed", intent))
        return stripe_error(402, "card_error", "This payment requires authentication, and the customer is not "
                            "present.", code="authentication_required", decline_code="authentication_required",
                            payment_intent=intent._export())
    return server.json_response(intent._export(expand=expand))


def _as_card_error(error: UserError) -> UserError:
    if error.code == 402:
        error.body["error"]["type"] = "card_error"
    return error


async def create_payment_intent(request: web.Request) -> web.Response:
    data = await server.get_post_data(request) or {}
    expand = data.pop("expand", None)
    usage = _setup_usage(data)
    off_session = resources.try_convert_to_bool(data.get("off_session"))
    try:
        data["payment_method"] = saved_payment_method(data.get("payment_method"))
        if resources.try_convert_to_bool(data.get("confirm")):
            _save_card(data.get("customer"), data["payment_method"], usage)
        intent = PaymentIntent._api_create(**data)
    except UserError as error:
        raise _as_card_error(error) from None
    intent.setup_future_usage = usage
    return _answer(intent, off_session, expand)


async def confirm_payment_intent(request: web.Request, intent_id: str) -> web.Response:
    """Confirm with a (new) payment method, which localstripe does not implement: after a decline or an
    abandoned 3-D Secure challenge the same PaymentIntent is confirmed again with another card, as on Stripe."""
    data = await server.get_post_data(request) or {}
    expand = data.pop("expand", None)
    off_session = resources.try_convert_to_bool(data.pop("off_session", None))
    intent = PaymentIntent._api_retrieve(intent_id)
    payment_method = saved_payment_method(data.pop("payment_method", None))
    if data:
        raise UserError(400, "Unexpected " + ", ".join(data))
    if intent.status not in ("requires_payment_method", "requires_confirmation", "requires_action"):
        raise UserError(400, f"This PaymentIntent's status is {intent.status}; it cannot be confirmed.",
                        {"code": "payment_intent_unexpected_state"})
    try:
        if payment_method is not None:
            PaymentMethod._api_retrieve(payment_method)
            intent.payment_method = payment_method
            intent.latest_charge = None
            intent.next_action = None
            intent._authentication_failed = False
        _save_card(intent.customer, intent.payment_method, getattr(intent, "setup_future_usage", None))
        intent = PaymentIntent._api_confirm(intent.id)
    except UserError as error:
        raise _as_card_error(error) from None
    return _answer(intent, off_session, expand)


@web.middleware
async def stripe_gaps(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "POST" and request.path == "/v1/payment_intents":
        return await create_payment_intent(request)
    confirming = _CONFIRM.match(request.path) if request.method == "POST" else None
    if confirming:
        return await confirm_payment_intent(request, confirming["id"])
    response = await handler(request)
    if request.method == "POST" and request.path == "/v1/refunds" and response.status == 200:
        refund = json.loads(response.body)
        resources.schedule_webhook(Event("charge.refunded", Charge._api_retrieve(refund["charge"])))
    return response


class Dispute:
    """The little of a dispute that ``charge.dispute.created`` carries."""

    def __init__(self, charge: Charge) -> None:
        self.charge = charge

    def _export(self, expand: Any = None) -> dict[str, Any]:
        return {"id": "dp_" + random_id(14), "object": "dispute", "charge": self.charge.id,
                "payment_intent": self.charge.payment_intent, "amount": self.charge.amount,
                "currency": self.charge.currency, "reason": "general", "status": "needs_response",
                "created": int(time.time()), "livemode": False}


async def open_dispute(request: web.Request) -> web.Response:
    charge = Charge._api_retrieve((await request.json())["charge"])
    resources.schedule_webhook(Event("charge.dispute.created", Dispute(charge)))
    return web.json_response({"charge": charge.id})


# --- webhooks ----------------------------------------------------------------------------------------------


def schedule_webhook(event: Event) -> None:
    """Instead of localstripe's one delivery per event a second later: bursts, duplicated and reordered as
    configured."""
    _pending_events.append(event)
    if len(_pending_events) == 1:
        asyncio.get_event_loop().call_later(_delivery["batch_seconds"],
                                            lambda: asyncio.ensure_future(_deliver_pending()))


async def _deliver_pending() -> None:
    burst = list(reversed(_pending_events)) if _delivery["newest_first"] else list(_pending_events)
    _pending_events.clear()
    async with aiohttp.ClientSession() as session:
        for event in burst:
            for _ in range(int(_delivery["duplicates"])):
                await _deliver(session, event)


def signed(secret: str, timestamp: int, payload: bytes) -> str:
    digest = hmac.new(secret.encode(), b"%d." % timestamp + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


async def _deliver(session: aiohttp.ClientSession, event: Event) -> None:
    payload = json.dumps(event._export(), sort_keys=True).encode()
    for target in list(webhooks._webhooks.values()):
        if target.events is not None and event.type not in target.events:
            continue
        if not await _post(session, target, event, payload):
            asyncio.ensure_future(_redeliver(target, event, payload))


async def _post(session: aiohttp.ClientSession, target: Any, event: Event, payload: bytes) -> bool:
    """One delivery, signed as Stripe signs it; whether the endpoint took it (a 2xx)."""
    headers = {"Content-Type": "application/json; charset=utf-8",
               "Stripe-Signature": signed(target.secret, int(time.time()), payload)}
    try:
        async with session.post(target.url, data=payload, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=30)) as answer:
            log.info("webhook %s %s -> %s", event.type, event.id, answer.status)
            return 200 <= answer.status < 300
    except (TimeoutError, aiohttp.ClientError) as error:
        log.info("webhook %s %s failed: %s", event.type, event.id, error)
        return False


async def _redeliver(target: Any, event: Event, payload: bytes) -> None:
    """As Stripe does with an endpoint that did not answer 2xx: again, with growing waits (Stripe's own go on for
    three days; here ``retry_seconds``, doubling up to a minute, ``retries`` times)."""
    wait = float(_delivery["retry_seconds"])
    async with aiohttp.ClientSession() as session:
        for _ in range(int(_delivery["retries"])):
            await asyncio.sleep(wait)
            if await _post(session, target, event, payload):
                return
            wait = min(wait * 2, 60)
    log.warning("webhook %s %s given up for %s", event.type, event.id, target.url)


async def configure_webhooks(request: web.Request) -> web.Response:
    """``{"duplicates": 3, "newest_first": true, "batch_seconds": 0.5, "retries": 8, "retry_seconds": 1}``."""
    settings = await request.json()
    for name in _delivery:
        if name in settings:
            _delivery[name] = settings[name]
    return web.json_response(_delivery)


# --- the process --------------------------------------------------------------------------------------------


def build_app(state: Path | None = None) -> web.Application:
    """localstripe's application with our middlewares in front and our control routes beside its own."""
    if state is None:
        store.dump_to_disk = lambda: None
    else:
        def dump() -> None:
            state.write_bytes(pickle.dumps(dict(store), protocol=pickle.HIGHEST_PROTOCOL))
        store.dump_to_disk = dump
        if state.exists():
            store.update(pickle.loads(state.read_bytes()))
    resources.schedule_webhook = schedule_webhook
    app = server.app
    # Outermost first: faults, then idempotency (so a lost answer is still kept for the retry), then
    # localstripe's error and authentication middlewares, then ours for its missing parameters.
    app.middlewares[0:0] = [faults, idempotency]
    app.middlewares.insert(app.middlewares.index(server.auth_middleware) + 1, stripe_gaps)
    app.router.add_route("*", "/_config/double/faults", configure_faults)
    app.router.add_post("/_config/double/webhooks", configure_webhooks)
    app.router.add_post("/_config/double/disputes", open_dispute)
    return app


def spawn(port: int, state: Path | None = None, log_file: Any = None,
          wait_seconds: float = 20.0) -> subprocess.Popen:
    """Start the stand-in as its own process on loopback and wait until it answers (tests, ``make run``)."""
    command = [sys.executable, "-m", "services.billing.stripe_double", "--port", str(port)]
    if state is not None:
        command += ["--state", str(state)]
    process = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2], stdout=log_file,
                               stderr=subprocess.STDOUT if log_file is not None else None)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Stripe stand-in exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the Stripe stand-in did not answer on port {port}")


@contextmanager
def running(state: Path | None = None) -> Iterator[str]:
    """A stand-in on a free loopback port for as long as the block runs (tests): its base address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = spawn(port, state, log_file=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--state", type=Path, help="keep the stand-in's objects in this file across restarts")
    parser.add_argument("--webhook-url", help="send every event, signed, to this endpoint from the start (as "
                                              "POST /_config/webhooks/{id} does): the gateway's /v1/webhooks/stripe")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--webhook-secret", help="the secret the events to --webhook-url are signed with (whsec_...)")
    secret.add_argument("--webhook-secret-file", type=Path, help="a file holding that secret (a mounted Secret)")
    args = parser.parse_args(argv)
    webhook_secret = args.webhook_secret
    if args.webhook_secret_file is not None:
        try:
            webhook_secret = args.webhook_secret_file.read_text().strip()
        except OSError as error:
            parser.error(f"--webhook-secret-file: {error}")
    if args.webhook_url is None and webhook_secret:
        parser.error("a webhook secret without --webhook-url")
    if args.webhook_url is not None:
        if not args.webhook_url.startswith(("http://", "https://")) or not webhook_secret:
            parser.error("--webhook-url needs an http(s) address and a secret (--webhook-secret or "
                         "--webhook-secret-file, not empty)")
        webhooks.register_webhook("start-up", args.webhook_url, webhook_secret, None)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s stripe-double %(message)s")
    if args.webhook_url is not None:
        log.info("sending webhooks to %s", args.webhook_url)
    web.run_app(build_app(args.state), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
