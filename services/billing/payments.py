"""Billing's adapter to Stripe, through the official ``stripe`` library.

Every call that moves money or creates something carries an idempotency key derived from the business operation
(``customer:<patient>``, ``deposit:<hold>``, ``balance:<appointment>``, ``refund:<reason>:<id>``), so no retry,
redelivery or second process can do it twice. The parameters are Stripe's documented ones; the stand-in
(``stripe_double``) answers the same requests. Answers are turned into plain ``PaymentOutcome`` values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import stripe

#: Ask for the charge's balance transaction with every PaymentIntent answer: it carries Stripe's fee.
EXPAND = ["latest_charge.balance_transaction"]
_STATUSES = {"succeeded": "succeeded", "requires_action": "requires_action", "processing": "processing",
             "requires_payment_method": "failed", "canceled": "failed", "requires_confirmation": "open",
             "requires_capture": "processing"}


@dataclass(frozen=True)
class PaymentOutcome:
    """What became of a PaymentIntent: ``succeeded``, ``requires_action``, ``processing``, ``failed`` or ``open``."""

    status: str
    payment_intent_id: str | None
    amount_cents: int
    currency: str
    client_secret: str | None = None
    payment_method_id: str | None = None
    charge_id: str | None = None
    fee_cents: int = 0
    failure_code: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RefundOutcome:
    refund_id: str
    status: str
    amount_cents: int
    currency: str
    charge_id: str | None
    metadata: dict[str, str] = field(default_factory=dict)


def refund_of(refund: Any) -> RefundOutcome:
    refund = _plain(refund)
    return RefundOutcome(refund["id"], refund["status"], refund["amount"], refund["currency"], refund.get("charge"),
                         dict(_plain(refund.get("metadata")) or {}))


class PaymentsUnavailable(Exception):
    """Stripe did not answer (after the library's own retries) or answered with a server error."""


def _plain(value: Any) -> Any:
    return value.to_dict() if hasattr(value, "to_dict") else value


def outcome_of(intent: Any, failure_code: str | None = None) -> PaymentOutcome:
    intent = _plain(intent)
    charge = _plain(intent.get("latest_charge"))
    fee = 0
    charge_id = charge
    if isinstance(charge, dict):
        charge_id = charge.get("id")
        transaction = _plain(charge.get("balance_transaction"))
        fee = transaction.get("fee", 0) if isinstance(transaction, dict) else 0
    error = _plain(intent.get("last_payment_error")) or {}
    return PaymentOutcome(
        status=_STATUSES.get(intent["status"], "open"), payment_intent_id=intent["id"],
        amount_cents=intent["amount"], currency=intent["currency"],
        client_secret=intent.get("client_secret") if intent["status"] == "requires_action" else None,
        payment_method_id=intent.get("payment_method"), charge_id=charge_id, fee_cents=fee,
        failure_code=failure_code or error.get("decline_code") or error.get("code"),
        metadata=dict(_plain(intent.get("metadata")) or {}))


class Payments:
    """Stripe, as billing uses it."""

    def __init__(self, api_key: str, api_base: str | None = None, timeout_seconds: float = 10,
                 max_network_retries: int = 2) -> None:
        self.client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base} if api_base else {},
            max_network_retries=max_network_retries, http_client=stripe.RequestsClient(timeout=timeout_seconds))

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            raise PaymentsUnavailable(str(exc)) from exc
        except stripe.APIError as exc:
            raise PaymentsUnavailable(str(exc)) from exc

    def customer_for(self, patient_id: str, name: str | None, email: str | None) -> str:
        params: dict[str, Any] = {"metadata": {"patient_id": patient_id}}
        if name:
            params["name"] = name
        if email:
            params["email"] = email
        customer = self._call(self.client.v1.customers.create, params=params,
                              options={"idempotency_key": f"customer:{patient_id}"})
        return customer.id

    def deposit_intent(self, hold_id: str, customer_id: str, amount_cents: int, currency: str,
                       metadata: dict[str, str]) -> str:
        """The one PaymentIntent of a hold's deposit, saving the card for off-session charges after the visit."""
        intent = self._call(self.client.v1.payment_intents.create, params={
            "amount": amount_cents, "currency": currency, "customer": customer_id,
            "setup_future_usage": "off_session", "payment_method_types": ["card"],
            "metadata": {**metadata, "kind": "deposit", "hold_id": hold_id},
        }, options={"idempotency_key": f"deposit:{hold_id}"})
        return intent.id

    def charge_now(self, operation_key: str, customer_id: str, payment_method_id: str, amount_cents: int,
                   currency: str, metadata: dict[str, str]) -> PaymentOutcome:
        """Charge the card the patient just gave (a package), saving it for off-session charges."""
        try:
            intent = self._call(self.client.v1.payment_intents.create, params={
                "amount": amount_cents, "currency": currency, "customer": customer_id,
                "payment_method": payment_method_id, "payment_method_types": ["card"], "confirm": True,
                "setup_future_usage": "off_session", "metadata": metadata, "expand": EXPAND,
            }, options={"idempotency_key": operation_key})
        except stripe.CardError as exc:
            return PaymentOutcome("failed", None, amount_cents, currency, failure_code=exc.code or "card_declined",
                                  metadata=metadata)
        return outcome_of(intent)

    def confirm(self, operation_key: str, payment_intent_id: str, payment_method_id: str) -> PaymentOutcome:
        """Confirm with the card the website collected; a decline is an outcome, not an exception."""
        try:
            intent = self._call(self.client.v1.payment_intents.confirm, payment_intent_id,
                                params={"payment_method": payment_method_id, "expand": EXPAND},
                                options={"idempotency_key": f"{operation_key}:confirm:{payment_method_id}"})
        except stripe.CardError as exc:
            return self._declined(payment_intent_id, exc)
        return outcome_of(intent)

    def charge_off_session(self, operation_key: str, customer_id: str, payment_method_id: str, amount_cents: int,
                           currency: str, metadata: dict[str, str]) -> PaymentOutcome:
        """Charge the saved card without the patient present (the balance after the visit)."""
        try:
            intent = self._call(self.client.v1.payment_intents.create, params={
                "amount": amount_cents, "currency": currency, "customer": customer_id,
                "payment_method": payment_method_id, "payment_method_types": ["card"], "confirm": True,
                "off_session": True, "metadata": metadata, "expand": EXPAND,
            }, options={"idempotency_key": operation_key})
        except stripe.CardError as exc:
            intent = _plain((exc.json_body or {}).get("error", {}).get("payment_intent"))
            if isinstance(intent, dict) and intent.get("id"):
                return outcome_of(intent, failure_code=exc.code)
            return PaymentOutcome("failed", None, amount_cents, currency, failure_code=exc.code or "card_declined",
                                  metadata=metadata)
        return outcome_of(intent)

    def payment_intent(self, payment_intent_id: str) -> PaymentOutcome:
        """The PaymentIntent as it is now (webhooks are read this way, whatever order they came in)."""
        return outcome_of(self._call(self.client.v1.payment_intents.retrieve, payment_intent_id,
                                     params={"expand": EXPAND}))

    def _declined(self, payment_intent_id: str, exc: stripe.CardError) -> PaymentOutcome:
        current = self.payment_intent(payment_intent_id)
        return PaymentOutcome("failed", payment_intent_id, current.amount_cents, current.currency,
                              failure_code=exc.code or "card_declined", metadata=current.metadata)

    def refund(self, refund_key: str, payment_intent_id: str, amount_cents: int,
               metadata: dict[str, str]) -> RefundOutcome:
        refund = self._call(self.client.v1.refunds.create, params={
            "payment_intent": payment_intent_id, "amount": amount_cents, "metadata": metadata,
        }, options={"idempotency_key": refund_key})
        return refund_of(refund)

    def refunds_of_charge(self, charge_id: str) -> list[RefundOutcome]:
        refunds = self._call(self.client.v1.refunds.list, params={"charge": charge_id, "limit": 100})
        return [refund_of(item) for item in refunds.data]

    def charge(self, charge_id: str) -> dict[str, Any]:
        return _plain(self._call(self.client.v1.charges.retrieve, charge_id))

    def balance_transactions(self, created_from: int, created_to: int) -> list[dict[str, Any]]:
        """Stripe's balance transactions created in ``[created_from, created_to)`` (Unix seconds), all pages."""
        found = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = self._call(self.client.v1.balance_transactions.list, params=params)
            items = [_plain(item) for item in page.data]
            found += [item for item in items if created_from <= item["created"] < created_to]
            if not page.has_more or not items:
                return found
            params["starting_after"] = items[-1]["id"]
