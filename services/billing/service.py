"""Billing: quotes, invoices, Stripe deposits and charges, fees and refunds, the ledger. A thin Nameko shell:
the rules are in ``catalogue``, ``fees`` and ``ledger``; Stripe is reached through ``payments``."""

from __future__ import annotations

import base64
import logging
import os
from datetime import datetime, timedelta
from typing import Any

from nameko.exceptions import MethodNotFound
from nameko.timer import timer
from pymongo.errors import DuplicateKeyError

import services.billing.events  # noqa: F401  (registers the event schemas)
from chassis.clock import as_utc, utcnow
from chassis.errors import InvalidInput, NotYet
from chassis.events import Event
from chassis.ids import derived_id, new_id
from chassis.pagination import fetch_page
from chassis.rpc import TimedRpcProxy, rpc
from chassis.service import RpcServiceBase, validated
from chassis.store import Store
from chassis.subscriber import subscribe
from services.billing import documents, exports, fees, ledger, packages
from services.billing.catalogue import quote_package, quote_visit
from services.billing.dependencies import (
    StripeAccount,
    create_indexes,
    load_fee_policy,
    load_practice,
    load_price_catalogue,
)
from services.billing.domain import invoice_from_quote, stored_quote
from services.billing.exceptions import (
    CardDeclined,
    HoldLapsed,
    HoldNotQuoted,
    InvoiceNotFound,
    NothingToPay,
    NotYourHold,
    PatientIneligible,
    PaymentsUnavailable,
    RefundExceedsPayment,
    SuperbillUnavailable,
    WaiverNotAvailable,
)
from services.billing.payments import PaymentOutcome, RefundOutcome
from services.billing.payments import PaymentsUnavailable as StripeUnavailable
from services.billing.schemas import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentNoShow,
    BookingFailed,
    DepositRequestSchema,
    DepositSchema,
    ExportRequestSchema,
    InvoiceSchema,
    PackagePurchaseSchema,
    PatientDeclined,
    PatientRegistered,
    QuoteRequestSchema,
    QuoteSchema,
    RefundRequestSchema,
    VisitAborted,
    VisitCompleted,
)

log = logging.getLogger(__name__)

#: How often billing looks for packages that expired with visits left unused.
PACKAGE_SWEEP_SECONDS = float(os.environ.get("PACKAGE_SWEEP_SECONDS", "3600"))

PRICE_CATALOGUE = load_price_catalogue()
FEE_POLICY = load_fee_policy()
PRACTICE = load_practice()


class BillingService(RpcServiceBase):
    name = "billing"

    store = Store("billing", indexes=create_indexes, outbox=("invoices", "journal"))
    stripe = StripeAccount()
    intake = TimedRpcProxy("intake")

    # --- quotes --------------------------------------------------------------------------------------------

    @rpc
    def quote(self, request: dict[str, Any]) -> dict[str, Any]:
        """Itemised price, deposit due now, balance after the visit and the cancellation policy. With a
        ``hold_id`` the quote is kept as the hold's (a repeated request for the hold returns the kept one)."""
        asked = validated(QuoteRequestSchema(), request)
        now = utcnow()
        policy = FEE_POLICY.effective_at(now)
        quote = quote_visit(PRICE_CATALOGUE.effective_at(now), asked["visit_type"],
                            postal_code=asked["postal_code"], discount_codes=asked["discount_codes"],
                            cancellation_policy=fees.policy_in_words(policy), fee_policy_version=policy.version)
        if asked["hold_id"] is None:
            return QuoteSchema().dump(stored_quote(new_id("quo"), quote, patient_id=asked["patient_id"],
                                                   created_at=now))
        quote_id = derived_id("quo", asked["hold_id"])
        kept = stored_quote(quote_id, quote, hold_id=asked["hold_id"], patient_id=asked["patient_id"],
                            start_at=asked["start_at"], expires_at=asked["expires_at"], created_at=now)
        if not self.store.insert_once("quotes", kept):
            kept = self.store.db.quotes.find_one({"_id": quote_id})
        return QuoteSchema().dump(kept)

    # --- customers -----------------------------------------------------------------------------------------

    @subscribe("intake", "patient.registered", PatientRegistered)
    def create_customer(self, event: Event) -> None:
        """One Stripe customer per patient (idempotency key ``customer:<patient>``)."""
        patient = event.payload
        if self.stripe is None:
            log.info("payments are not configured: no Stripe customer for patient %s", patient["patient_id"])
            return
        name = " ".join(part for part in (patient["first_name"], patient.get("last_name")) if part)
        self._customer_id(patient["patient_id"], name, patient["email"])
        self.store.db.customers.update_one({"_id": patient["patient_id"]}, {"$set": {"name": name}})

    def _customer_id(self, patient_id: str, name: str | None = None, email: str | None = None) -> str:
        known = self.store.db.customers.find_one({"_id": patient_id})
        if known is not None:
            return known["stripe_customer_id"]
        customer_id = self._stripe("customer_for", patient_id, name, email)
        self.store.insert_once("customers", {"_id": patient_id, "stripe_customer_id": customer_id,
                                             "created_at": utcnow()})
        return customer_id

    # --- deposits ------------------------------------------------------------------------------------------

    @rpc
    def pay_deposit(self, hold_id: str, payment_method_id: str, patient_id: str | None = None) -> dict[str, Any]:
        """Pay a hold's deposit (exactly its quote's) with the card the website collected, saving the card for
        the balance after the visit. ``succeeded``, ``requires_action`` (with the client secret for 3-D Secure),
        or ``CardDeclined`` (402). ``patient_id``, when given, must be the hold's patient."""
        asked = validated(DepositRequestSchema(), {"hold_id": hold_id, "payment_method_id": payment_method_id,
                                                    "patient_id": patient_id})
        quote = self.store.db.quotes.find_one({"_id": derived_id("quo", asked["hold_id"])})
        if quote is None:
            raise HoldNotQuoted(f"no hold {hold_id} awaiting a deposit", hold_id=hold_id)
        if asked["patient_id"] is not None and asked["patient_id"] != quote["patient_id"]:
            raise NotYourHold("this hold is another patient's", hold_id=hold_id)
        deposit = self.store.db.deposits.find_one({"_id": quote["hold_id"]})
        if deposit is not None and deposit["status"] == "succeeded":
            return DepositSchema().dump({**deposit, "hold_id": quote["hold_id"], "client_secret": None})
        if quote["deposit_cents"] <= 0:
            raise NothingToPay("this visit needs no deposit", hold_id=hold_id)
        if as_utc(quote["expires_at"]) <= utcnow():
            raise HoldLapsed("the hold has lapsed; place a new one", hold_id=hold_id)
        intent_id = deposit["payment_intent_id"] if deposit else self._open_deposit(quote)
        outcome = self._stripe("confirm", f"deposit:{quote['hold_id']}", intent_id,
                               asked["payment_method_id"])
        if outcome.status == "succeeded":
            self._deposit_succeeded(outcome)
        else:
            self.store.db.deposits.update_one({"_id": quote["hold_id"], "status": {"$ne": "succeeded"}},
                                              {"$set": {"status": outcome.status,
                                                        "failure_code": outcome.failure_code}})
        if outcome.status == "failed":
            raise CardDeclined("the card was declined", hold_id=hold_id, decline_code=outcome.failure_code)
        return DepositSchema().dump({"hold_id": quote["hold_id"], **_outcome_fields(outcome)})

    def _open_deposit(self, quote: dict[str, Any]) -> str:
        """The hold's one PaymentIntent (idempotency key ``deposit:<hold>``), for exactly the quote's deposit."""
        customer_id = self._customer_id(quote["patient_id"])
        intent_id = self._stripe("deposit_intent", quote["hold_id"], customer_id, quote["deposit_cents"],
                                 quote["currency"], {"patient_id": quote["patient_id"], "quote_id": quote["_id"]})
        try:
            self.store.db.deposits.update_one({"_id": quote["hold_id"]}, {"$setOnInsert": {
                "status": "open", "payment_intent_id": intent_id, "patient_id": quote["patient_id"],
                "amount_cents": quote["deposit_cents"], "currency": quote["currency"], "quote_id": quote["_id"],
                "created_at": utcnow()}}, upsert=True)
        except DuplicateKeyError:
            pass  # another process opened it at the same moment: the same PaymentIntent (same key)
        return intent_id

    def _deposit_succeeded(self, outcome: PaymentOutcome) -> None:
        """Recorded once, whichever comes first: the synchronous answer or the webhook."""
        hold_id, patient_id = outcome.metadata["hold_id"], outcome.metadata["patient_id"]
        entry = ledger.deposit_received(outcome.payment_intent_id, hold_id, patient_id, outcome.amount_cents,
                                        outcome.fee_cents, outcome.currency, utcnow(), outcome.charge_id)
        paid = {"hold_id": hold_id, "patient_id": patient_id, "payment_intent_id": outcome.payment_intent_id,
                "amount_cents": outcome.amount_cents, "currency": outcome.currency}
        events = [self.store.event("deposit.paid", paid),
                  self.store.event("payment.succeeded", {**_payment_fields(outcome, patient_id), "kind": "deposit",
                                                         "invoice_id": None, "appointment_id": None})]
        if self.store.insert_once("journal", entry, events):
            log.info("deposit %s paid for hold %s", outcome.payment_intent_id, hold_id)
        self.store.db.deposits.update_one({"_id": hold_id}, {"$set": {
            "status": "succeeded", "payment_method_id": outcome.payment_method_id, "charge_id": outcome.charge_id}})
        if outcome.payment_method_id:
            self.store.db.customers.update_one({"_id": patient_id},
                                               {"$set": {"saved_payment_method_id": outcome.payment_method_id}})

    @rpc
    def buy_package(self, request: dict[str, Any]) -> dict[str, Any]:
        """A package of visits (e.g. the 6-infusion induction) paid in full now, at the catalogue's package
        price; the purchase id derives from the client's operation key, so a retried request charges once."""
        asked = validated(PackagePurchaseSchema(), request)
        if self._declined(asked["patient_id"]):
            raise PatientIneligible("a clinician found this patient ineligible: no package can be bought",
                                     patient_id=asked["patient_id"])
        now = utcnow()
        quote = quote_package(PRICE_CATALOGUE.effective_at(now), asked["package"],
                              discount_codes=asked["discount_codes"])
        purchase_id = self.store.creation_id("pkg", asked["patient_id"], asked["package"])
        customer_id = self._customer_id(asked["patient_id"])
        outcome = self._stripe("charge_now", f"package:{purchase_id}", customer_id, asked["payment_method_id"],
                               quote.total_cents, quote.currency,
                               {"kind": "package", "purchase_id": purchase_id, "patient_id": asked["patient_id"],
                                "package": asked["package"]})
        if outcome.status == "failed":
            raise CardDeclined("the card was declined", decline_code=outcome.failure_code)
        if outcome.status == "succeeded":
            self._package_paid(outcome)
        return {"purchase_id": purchase_id, "package": asked["package"], **_outcome_fields(outcome)}

    @rpc
    def patient_packages(self, patient_id: str) -> list[dict[str, Any]]:
        """The patient's packages, newest first: visits used and left, expiry and status."""
        found = self.store.db.packages.find({"patient_id": str(patient_id)}).sort("paid_at", -1)
        return [packages.summary(package, utcnow()) for package in found]

    def _package_paid(self, outcome: PaymentOutcome) -> None:
        """Recorded once, from the answer or the webhook: the ledger entry, then the patient's package."""
        purchase_id, patient_id = outcome.metadata["purchase_id"], outcome.metadata["patient_id"]
        catalogue = PRICE_CATALOGUE.effective_at()
        terms = catalogue["packages"][outcome.metadata["package"]]
        entry = ledger.package_sold(outcome.payment_intent_id, purchase_id, patient_id, outcome.amount_cents,
                                    outcome.fee_cents, outcome.currency, utcnow(), outcome.charge_id)
        succeeded = self.store.event("payment.succeeded", {**_payment_fields(outcome, patient_id), "kind": "package",
                                                           "invoice_id": None, "appointment_id": None})
        self.store.insert_once("journal", entry, [succeeded])
        now = utcnow()
        package = packages.bought(
            purchase_id, patient_id, outcome.metadata["package"], terms, outcome.amount_cents, outcome.currency,
            catalogue.version, now, now + timedelta(days=terms["valid_days"]), outcome.payment_intent_id)
        self.store.insert_once("packages", package)
        if self._declined(patient_id):  # paid while the decline was being handled: refunded the same way
            self._refund_declined_package(package, now)

    def _declined(self, patient_id: str) -> bool:
        return self.store.db.declined_patients.find_one({"_id": patient_id}) is not None

    @subscribe("scheduling", "booking.failed", BookingFailed)
    def refund_failed_booking(self, event: Event) -> None:
        """A hold paid too late (its slots taken meanwhile): the deposit is refunded in full."""
        hold_id = event.payload["hold_id"]
        paid = self.store.db.journal.find_one({"kind": "deposit", "hold_id": hold_id})
        if paid is None:
            log.info("booking of hold %s failed before any deposit was paid", hold_id)
            return
        held = -ledger.total(self._entries({"lines.hold_id": hold_id}), "deposits_held", hold_id=hold_id)
        if held > 0:
            self._refund("booking_failed", hold_id, paid["payment_intent_id"], held, paid["patient_id"], "hold",
                         hold_id=hold_id)

    # --- invoices ------------------------------------------------------------------------------------------

    @subscribe("scheduling", "appointment.booked", AppointmentBooked)
    def invoice_booked_appointment(self, event: Event) -> None:
        """One invoice per appointment, at the price of the hold's quote when it had one, else priced from the
        catalogue in force when it was booked; the hold's deposit counts towards it, and so does one credit of
        the patient's packages when one covers the visit (``packages``)."""
        booked = event.payload
        quote = self._quote_of(booked)
        if quote is None:
            quote = quote_visit(PRICE_CATALOGUE.effective_at(event.occurred_at), booked["visit_type"],
                                postal_code=booked["postal_code"]).as_dict()  # a booking without a hold: travel too
        invoice_id = derived_id("inv", booked["appointment_id"])
        hold_id = booked.get("hold_id") or quote.get("hold_id")
        deposit = -ledger.total(self._entries({"lines.hold_id": hold_id}), "deposits_held",
                                hold_id=hold_id) if hold_id else 0
        invoice = {**invoice_from_quote(invoice_id, booked["appointment_id"], booked["patient_id"],
                                        booked["start_at"], quote),
                   "hold_id": hold_id, "visit_type": booked["visit_type"], "created_at": utcnow(),
                   "caused_by": event.event_id}
        claim = self._package_credit(invoice, booked["visit_type"])
        if claim is not None:
            invoice = packages.priced_with_credit(invoice, booked["visit_type"], claim)
        self.store.insert_once("journal", ledger.invoice_opened(
            invoice_id, booked["patient_id"], invoice["total_cents"], deposit, hold_id, invoice["currency"],
            utcnow()))
        if claim is not None:
            self.store.insert_once("journal", ledger.package_credit_applied(
                invoice_id, claim["purchase_id"], booked["patient_id"], claim["value_cents"], invoice["currency"],
                utcnow()))
        created = self.store.event("invoice.created", {
            "invoice_id": invoice_id, "appointment_id": booked["appointment_id"],
            "patient_id": booked["patient_id"], "currency": invoice["currency"],
            "total_cents": invoice["total_cents"], "visit_start_at": booked["start_at"],
        })
        if self.store.insert_once("invoices", invoice, [created]):
            log.info("invoice %s created for appointment %s", invoice_id, booked["appointment_id"])

    # --- package credits -----------------------------------------------------------------------------------

    def _package_credit(self, invoice: dict[str, Any], visit_type: str) -> dict[str, Any] | None:
        """The package credit this invoice draws on: the one it already claimed (a redelivery), else one free
        slot of the patient's packages covering the visit, taken by a conditional write and kept as the
        invoice's claim (``package_claims``, keyed by the invoice: two deliveries at once keep one claim and
        the loser gives its slot back). None when no package covers it, or when the invoice was already
        opened without one (a package bought since does not reprice it)."""
        invoice_id = invoice["_id"]
        kept = self.store.db.package_claims.find_one({"_id": invoice_id})
        if kept is not None:
            return kept
        if invoice["total_cents"] <= 0 or self.store.db.journal.find_one(
                {"_id": ledger.entry_id(f"invoice:{invoice_id}")}, {"_id": 1}) is not None:
            return None
        taken = self._slot_held_by(invoice_id) or self._take_slot(invoice, visit_type) or self._slot_held_by(
            invoice_id)
        if taken is None:
            return None
        package, slot = taken
        claim = packages.credit(invoice_id, package, slot, utcnow())
        try:
            self.store.db.package_claims.insert_one(claim)
        except DuplicateKeyError:
            claim = self.store.db.package_claims.find_one({"_id": invoice_id})
            if (claim["purchase_id"], claim["slot"]) != (package["_id"], slot):
                self._free_slot(package["_id"], slot, invoice_id)
        return claim

    def _slot_held_by(self, invoice_id: str) -> tuple[dict[str, Any], int] | None:
        """A slot this invoice took before (a crash before its claim was kept, or another delivery now)."""
        package = self.store.db.packages.find_one({"slots": invoice_id})
        return (package, package["slots"].index(invoice_id)) if package is not None else None

    def _take_slot(self, invoice: dict[str, Any], visit_type: str) -> tuple[dict[str, Any], int] | None:
        """One free slot, the package expiring soonest first; each try is a write conditional on the slot
        being free (and the package not already used by this invoice), so two invoices never share one."""
        candidates = self.store.db.packages.find({"patient_id": invoice["patient_id"], "visit_type": visit_type,
                                                  "slots": None})
        for package in packages.claim_order(candidates):
            if not packages.covers(package, visit_type, invoice["currency"], invoice["visit_start_at"]):
                continue
            for slot in packages.free_slots(package):
                taken = self.store.db.packages.update_one(
                    {"_id": package["_id"], f"slots.{slot}": None, "slots": {"$ne": invoice["_id"]}},
                    {"$set": {f"slots.{slot}": invoice["_id"]}, "$inc": {"visits_used": 1}})
                if taken.modified_count == 1:
                    return package, slot
        return None

    def _free_slot(self, purchase_id: str, slot: int, invoice_id: str) -> None:
        self.store.db.packages.update_one({"_id": purchase_id, f"slots.{slot}": invoice_id},
                                          {"$set": {f"slots.{slot}": None}, "$inc": {"visits_used": -1}})

    def _return_package_credit(self, invoice: dict[str, Any]) -> None:
        """A visit called off gives its package credit back, whatever the cause (``fees``: a fee is kept only
        from money paid on the invoice). Each step is idempotent, so a redelivery finishes an interrupted one."""
        claim = self.store.db.package_claims.find_one({"_id": invoice["_id"]})
        if claim is None:
            return
        self.store.insert_once("journal", ledger.package_credit_returned(
            invoice["_id"], claim["purchase_id"], invoice["patient_id"], claim["value_cents"], invoice["currency"],
            utcnow()))
        self._free_slot(claim["purchase_id"], claim["slot"], invoice["_id"])
        self.store.db.package_claims.update_one({"_id": invoice["_id"], "status": "applied"},
                                                {"$set": {"status": "returned", "returned_at": utcnow()}})
        self.store.db.invoices.update_one({"_id": invoice["_id"]}, {"$set": {"package_credit.status": "returned"}})

    def _quote_of(self, booked: dict[str, Any]) -> dict[str, Any] | None:
        if booked.get("quote_id"):
            return self.store.db.quotes.find_one({"_id": booked["quote_id"]})
        if booked.get("hold_id"):
            return self.store.db.quotes.find_one({"hold_id": booked["hold_id"]})
        return None

    def _invoice_of(self, appointment_id: str) -> dict[str, Any]:
        invoice = self.store.db.invoices.find_one({"_id": derived_id("inv", appointment_id)})
        if invoice is None:
            raise NotYet(f"no invoice yet for appointment {appointment_id}")
        return invoice

    @rpc
    def list_invoices(self, appointment_id: str | None = None, patient_id: str | None = None,
                      cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """A page of invoices, oldest first, filtered by appointment and/or patient."""
        query: dict[str, Any] = {}
        if appointment_id is not None:
            query["appointment_id"] = str(appointment_id)
        if patient_id is not None:
            query["patient_id"] = str(patient_id)
        page = fetch_page(self.store.db.invoices, query, "created_at", cursor=cursor, limit=limit,
                          projection={"outbox": 0})
        return {"items": [self._invoice_view(invoice, detailed=False) for invoice in page.items],
                "next_cursor": page.next_cursor}

    @rpc
    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        """One invoice with its amount due (from the ledger), its payments and its refunds."""
        return self._invoice_view(self._invoice(invoice_id), detailed=True)

    def _invoice(self, invoice_id: str) -> dict[str, Any]:
        invoice = self.store.db.invoices.find_one({"_id": str(invoice_id)}, {"outbox": 0})
        if invoice is None:
            raise InvoiceNotFound(f"no invoice {invoice_id}", invoice_id=invoice_id)
        return invoice

    def _invoice_view(self, invoice: dict[str, Any], detailed: bool) -> dict[str, Any]:
        entries = self._invoice_entries(invoice)
        view = {**invoice, "amount_due_cents": ledger.total(entries, "receivable", invoice_id=invoice["_id"])}
        if detailed:
            view["payments"] = [{**entry, "amount_cents": _cash(entry)} for entry in entries
                                if entry["kind"] in ("deposit", "balance")]
            view["refunds"] = [{**entry, "amount_cents": -_cash(entry)} for entry in entries
                               if entry["kind"] == "refund"]
        return InvoiceSchema().dump(view)

    def _invoice_entries(self, invoice: dict[str, Any]) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"lines.invoice_id": invoice["_id"]}
        if invoice.get("hold_id"):
            query = {"$or": [query, {"lines.hold_id": invoice["hold_id"]}]}
        return self._entries(query)

    def _entries(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.store.db.journal.find(query, {"outbox": 0}).sort("posted_at", 1))

    @rpc
    def patient_balance(self, patient_id: str) -> dict[str, Any]:
        """What the patient owes on their invoices (negative: what is owed to them), from the ledger."""
        entries = self._entries({"lines.patient_id": str(patient_id)})
        return {"patient_id": str(patient_id), "currency": PRICE_CATALOGUE.effective_at()["currency"],
                "balance_cents": ledger.total(entries, "receivable", patient_id=str(patient_id)),
                "deposits_held_cents": -ledger.total(entries, "deposits_held", patient_id=str(patient_id))}

    # --- the visit and the balance -------------------------------------------------------------------------

    @subscribe("scheduling", "visit.completed", VisitCompleted)
    def charge_balance(self, event: Event) -> None:
        """The visit's revenue is earned; what is still due is charged off-session on the saved card."""
        completed = event.payload
        invoice = self._invoice_of(completed["appointment_id"])
        self.store.db.invoices.update_one({"_id": invoice["_id"]}, {"$set": {
            "infusion_minutes": completed.get("infusion_minutes"), "completed_at": completed.get("completed_at")}})
        self.store.insert_once("journal", ledger.visit_given(
            invoice["_id"], invoice["patient_id"], invoice["line_items"], invoice.get("discount_cents", 0),
            invoice["currency"], utcnow()))
        due = ledger.total(self._invoice_entries(invoice), "receivable", invoice_id=invoice["_id"])
        if due < 0:  # paid more than the visit cost: a package credit or a discount covered what the deposit did
            self._refund_credit(invoice, "overpaid")
        if due <= 0:
            self._settle(invoice)
            return
        customer = self.store.db.customers.find_one({"_id": invoice["patient_id"]}) or {}
        if not customer.get("saved_payment_method_id"):
            self._balance_failed(invoice, due, "no_saved_card")
            return
        outcome = self._stripe("charge_off_session", f"balance:{invoice['appointment_id']}",
                               customer["stripe_customer_id"], customer["saved_payment_method_id"], due,
                               invoice["currency"], {"kind": "balance", "invoice_id": invoice["_id"],
                                                     "appointment_id": invoice["appointment_id"],
                                                     "patient_id": invoice["patient_id"]})
        if outcome.status == "succeeded":
            self._balance_succeeded(outcome)
        elif outcome.status == "failed":
            self._balance_failed(invoice, due, outcome.failure_code or "card_declined")

    def _balance_succeeded(self, outcome: PaymentOutcome) -> None:
        invoice = self._invoice(outcome.metadata["invoice_id"])
        entry = ledger.balance_received(outcome.payment_intent_id, invoice["_id"], invoice["patient_id"],
                                        outcome.amount_cents, outcome.fee_cents, outcome.currency, utcnow(),
                                        outcome.charge_id)
        succeeded = self.store.event("payment.succeeded", {
            **_payment_fields(outcome, invoice["patient_id"]), "kind": "balance", "invoice_id": invoice["_id"],
            "appointment_id": invoice["appointment_id"]})
        self.store.insert_once("journal", entry, [succeeded])
        self._settle(invoice)

    def _balance_failed(self, invoice: dict[str, Any], amount_cents: int, reason_code: str) -> None:
        """The invoice stays open; ``payment.failed`` once per invoice."""
        failed = self.store.event("payment.failed", {
            "patient_id": invoice["patient_id"], "invoice_id": invoice["_id"],
            "appointment_id": invoice["appointment_id"], "amount_cents": amount_cents,
            "currency": invoice["currency"], "reason_code": reason_code})
        self.store.update_with_events("invoices", {"_id": invoice["_id"], "balance_failure": {"$exists": False}},
                                      {"$set": {"balance_failure": {"reason_code": reason_code,
                                                                    "at": utcnow()}}}, [failed])

    def _settle(self, invoice: dict[str, Any]) -> None:
        settled = self.store.event("invoice.settled", {"invoice_id": invoice["_id"],
                                                       "patient_id": invoice["patient_id"],
                                                       "appointment_id": invoice["appointment_id"]})
        self.store.update_with_events("invoices", {"_id": invoice["_id"], "status": "open"},
                                      {"$set": {"status": "settled", "settled_at": utcnow()}}, [settled])

    # --- fees and refunds ----------------------------------------------------------------------------------

    @subscribe("scheduling", "appointment.cancelled", AppointmentCancelled)
    def apply_cancellation_policy(self, event: Event) -> None:
        cancelled = event.payload
        if cancelled["by"] == "clinic":
            self._call_off(cancelled["appointment_id"], "clinic_cancelled", event.occurred_at)
        else:
            self._call_off(cancelled["appointment_id"], "patient_cancelled", event.occurred_at,
                           notice_hours=cancelled["notice_hours"])

    @subscribe("scheduling", "appointment.no_show", AppointmentNoShow)
    def charge_no_show(self, event: Event) -> None:
        self._call_off(event.payload["appointment_id"], "no_show", event.occurred_at)

    @subscribe("scheduling", "visit.aborted", VisitAborted)
    def charge_aborted_visit(self, event: Event) -> None:
        cause = "aborted_chargeable" if event.payload["chargeable"] else "aborted_clinical"
        self._call_off(event.payload["appointment_id"], cause, event.occurred_at)

    @subscribe("intake", "patient.declined", PatientDeclined)
    def refund_declined_patient(self, event: Event) -> None:
        """A patient found ineligible: every open invoice is called off by the policy's declined rule (their
        package credits go back first), then the visits left in their packages are refunded by the same rule. The
        decline is recorded first: a package paid meanwhile sees it and is refunded too, and none is sold after."""
        self.store.db.declined_patients.update_one({"_id": event.payload["patient_id"]},
                                                   {"$setOnInsert": {"declined_at": event.occurred_at}}, upsert=True)
        for invoice in self.store.db.invoices.find({"patient_id": event.payload["patient_id"], "status": "open"}):
            self._call_off(invoice["appointment_id"], "patient_declined", event.occurred_at)
        for package in self.store.db.packages.find({"patient_id": event.payload["patient_id"]}):
            self._refund_declined_package(package, event.occurred_at)

    def _refund_declined_package(self, package: dict[str, Any], occurred_at: datetime) -> None:
        """Each free slot is closed as declined; what the declined slots are worth is refunded less the retention
        percentage (kept as a fee). The amount is read from the closed slots, so a redelivery after a crash
        anywhere here closes the same slots, keeps the same fee and asks Stripe for the same refund (one key)."""
        package = self._close_free_slots(package, packages.DECLINED)
        unused = packages.value_marked(package, packages.DECLINED)
        if unused == 0 or not package.get("payment_intent_id"):
            return
        decision = fees.decide(FEE_POLICY.effective_at(occurred_at), "patient_declined", unused)
        self.store.insert_once("journal", ledger.package_retained(
            package["_id"], package["patient_id"], decision.fee_cents, "patient_declined", package["currency"],
            utcnow()))
        if decision.refund_cents:
            self._refund("patient_declined", f"package:{package['_id']}", package["payment_intent_id"],
                         decision.refund_cents, package["patient_id"], "package", purchase_id=package["_id"])

    def _close_free_slots(self, package: dict[str, Any], mark: str) -> dict[str, Any]:
        """Each free slot marked (a write conditional on it being free); the package as stored after."""
        for slot in packages.free_slots(package):
            self.store.db.packages.update_one({"_id": package["_id"], f"slots.{slot}": None},
                                              {"$set": {f"slots.{slot}": mark}})
        return self.store.db.packages.find_one({"_id": package["_id"]})

    @timer(interval=PACKAGE_SWEEP_SECONDS)
    def close_expired_packages(self) -> None:
        """The visits of a package left unused when it expires are earned (``revenue:package_expired``), one
        entry per slot. A package is looked at again while it has a free slot (a credit given back after the
        expiry) or its entries are not all written (a crash between the marks and the entries)."""
        for package in self.store.db.packages.find({"expires_at": {"$lt": utcnow()},
                                                    "$or": [{"slots": None}, {"expiry_recorded": {"$ne": True}}]}):
            package = self._close_free_slots(package, packages.EXPIRED)
            for slot, value in packages.slots_marked(package, packages.EXPIRED):
                if self.store.insert_once("journal", ledger.package_expired(
                        package["_id"], slot, package["patient_id"], value, package["currency"], utcnow())):
                    log.info("package %s: visit %d expired unused", package["_id"], slot + 1)
            self.store.db.packages.update_one({"_id": package["_id"]}, {"$set": {"expiry_recorded": True}})

    def _call_off(self, appointment_id: str, cause: str, occurred_at: datetime,
                  notice_hours: float | None = None) -> None:
        """A booked visit that will not be given: the fee the policy in force keeps, the rest refunded."""
        invoice = self._invoice_of(appointment_id)
        entries = self._invoice_entries(invoice)
        if any(entry["kind"] in ("called_off", "visit") for entry in entries):
            called_off = next((e for e in entries if e["kind"] == "called_off"), None)
            if called_off is not None:
                self._return_package_credit(invoice)
                self._refund_credit(invoice, called_off["reason"])
            return
        self._return_package_credit(invoice)
        policy = FEE_POLICY.effective_at(occurred_at)
        paid = _paid(entries)
        decision = fees.decide(policy, cause, paid, notice_hours=notice_hours,
                               waived=bool(invoice.get("fee_waiver")))
        events = []
        if decision.fee_cents:
            events.append(self.store.event("fee.charged", {
                "fee_id": derived_id("fee", invoice["_id"]), "patient_id": invoice["patient_id"],
                "appointment_id": appointment_id, "invoice_id": invoice["_id"], "amount_cents": decision.fee_cents,
                "currency": invoice["currency"], "reason": cause}))
        entry = ledger.visit_called_off(invoice["_id"], invoice["patient_id"], invoice["total_cents"],
                                        decision.fee_cents, cause, invoice["currency"], utcnow())
        entry["fee_policy_version"] = decision.policy_version
        self.store.insert_once("journal", entry, events)
        self.store.db.invoices.update_one({"_id": invoice["_id"]}, {"$set": {
            "status": "called_off", "fee_cents": decision.fee_cents, "fee_policy_version": decision.policy_version,
            "called_off_because": cause}})
        self._refund_credit(invoice, cause)

    def _refund_credit(self, invoice: dict[str, Any], reason: str) -> None:
        """Refund what the invoice owes the patient (a credit on its receivable), from its payments."""
        entries = self._invoice_entries(invoice)
        owed = -ledger.total(entries, "receivable", invoice_id=invoice["_id"])
        for payment_intent_id, refundable in _refundable(entries):
            amount = min(owed, refundable)
            if amount <= 0:
                break
            self._refund(reason, f"{invoice['_id']}:{payment_intent_id}", payment_intent_id, amount,
                         invoice["patient_id"], "invoice", invoice_id=invoice["_id"])
            owed -= amount

    @rpc
    def refund_invoice(self, invoice_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """A manual refund by finance or an admin, with a reason, never above what was paid and not yet
        refunded. The operation's key makes a repeated request refund once."""
        asked = validated(RefundRequestSchema(), request)
        invoice = self._invoice(invoice_id)
        if asked["currency"] != invoice["currency"]:
            raise RefundExceedsPayment(f"the invoice is in {invoice['currency']}", invoice_id=invoice_id)
        entries = self._invoice_entries(invoice)
        refundable = _refundable(entries)
        left = sum(amount for _, amount in refundable)
        if asked["amount_cents"] > left:
            raise RefundExceedsPayment(f"at most {left} cents can be refunded", invoice_id=invoice_id,
                                       refundable_cents=left)
        source = "revenue" if any(entry["kind"] == "visit" for entry in entries) else "invoice"
        operation = self.store.creation_id("rfd", invoice["_id"])
        remaining, refunds = asked["amount_cents"], []
        for payment_intent_id, available in refundable:
            amount = min(remaining, available)
            if amount <= 0:
                break
            refunds.append(self._refund("manual", f"{operation}:{payment_intent_id}", payment_intent_id, amount,
                                        invoice["patient_id"], source, invoice_id=invoice["_id"],
                                        note=asked["reason"], requested_by=asked["requested_by"]))
            remaining -= amount
        return {"invoice_id": invoice["_id"], "refunds": [{"refund_id": r.refund_id, "amount_cents": r.amount_cents,
                                                           "currency": r.currency} for r in refunds]}

    @rpc
    def waive_fee(self, invoice_id: str, granted_by: str) -> dict[str, Any]:
        """An admin's waiver of the invoice's fee: one per patient per calendar year (the policy's number).
        A fee already kept is refunded; a later cancellation keeps none."""
        invoice = self._invoice(invoice_id)
        if invoice.get("fee_waiver"):
            return {"invoice_id": invoice["_id"], "waived": True}
        year = utcnow().year
        allowed = FEE_POLICY.effective_at()["waivers_per_year"]
        for number in range(allowed):
            try:
                self.store.db.waivers.insert_one({"_id": f"{invoice['patient_id']}:{year}:{number}",
                                                  "invoice_id": invoice["_id"], "granted_by": granted_by,
                                                  "granted_at": utcnow()})
                break
            except DuplicateKeyError:
                continue
        else:
            raise WaiverNotAvailable(f"the patient's {allowed} waiver(s) for {year} are used", invoice_id=invoice_id)
        self.store.db.invoices.update_one({"_id": invoice["_id"]}, {"$set": {"fee_waiver": {
            "granted_by": granted_by, "granted_at": utcnow()}}})
        fee = invoice.get("fee_cents", 0)
        if fee:
            entries = self._invoice_entries(invoice)
            for payment_intent_id, available in _refundable(entries):
                amount = min(fee, available)
                if amount <= 0:
                    break
                self._refund("waiver", f"{invoice['_id']}:{payment_intent_id}", payment_intent_id, amount,
                             invoice["patient_id"], "fee", invoice_id=invoice["_id"])
                fee -= amount
        return {"invoice_id": invoice["_id"], "waived": True}

    def _refund(self, reason: str, cause_id: str, payment_intent_id: str, amount_cents: int, patient_id: str,
                source: str, invoice_id: str | None = None, hold_id: str | None = None,
                purchase_id: str | None = None, **note: str) -> RefundOutcome:
        """Refund at Stripe (idempotency key ``refund:<reason>:<id>``) and record it once."""
        key = f"refund:{reason}:{cause_id}"
        about = {"invoice_id": invoice_id, "hold_id": hold_id, "purchase_id": purchase_id}
        metadata = {"refund_key": key, "reason": reason, "source": source, "patient_id": patient_id,
                    "payment_intent_id": payment_intent_id,
                    **{name: value for name, value in about.items() if value}, **note}
        refund = self._stripe("refund", key, payment_intent_id, amount_cents, metadata)
        self._record_refund(refund, metadata)
        return refund

    def _record_refund(self, refund: RefundOutcome, metadata: dict[str, str]) -> None:
        if refund.status not in ("succeeded", "pending"):
            return
        entry = ledger.refund_paid(metadata["refund_key"], refund.refund_id, metadata["source"],
                                   metadata["patient_id"], refund.amount_cents, refund.currency, utcnow(),
                                   invoice_id=metadata.get("invoice_id"), hold_id=metadata.get("hold_id"),
                                   purchase_id=metadata.get("purchase_id"))
        entry["payment_intent_id"] = metadata["payment_intent_id"]
        entry["reason"] = metadata["reason"]
        issued = self.store.event("refund.issued", {
            "refund_id": refund.refund_id, "patient_id": metadata["patient_id"],
            "invoice_id": metadata.get("invoice_id"), "hold_id": metadata.get("hold_id"),
            "purchase_id": metadata.get("purchase_id"), "amount_cents": refund.amount_cents,
            "currency": refund.currency, "reason": metadata["reason"]})
        if self.store.insert_once("journal", entry, [issued]):
            log.info("refund %s of %s cents recorded (%s)", refund.refund_id, refund.amount_cents,
                     metadata["refund_key"])

    # --- documents -----------------------------------------------------------------------------------------

    @rpc
    def receipt_pdf(self, invoice_id: str) -> dict[str, str]:
        """The invoice's itemised receipt (HSA/FSA) as a PDF, base64-encoded for the RPC answer."""
        invoice = self.get_invoice(invoice_id)
        customer = self.store.db.customers.find_one({"_id": invoice["patient_id"]}) or {}
        content = documents.receipt_pdf(PRACTICE.effective_at(), invoice,
                                        customer.get("name") or invoice["patient_id"])
        return _pdf(f"receipt-{invoice['id']}.pdf", content)

    @rpc
    def superbill_pdf(self, invoice_id: str) -> dict[str, str]:
        """The superbill of a visit given, as a PDF; intake's diagnosis codes and referring provider are asked
        for now (``superbill_facts``) and not stored."""
        invoice = self.get_invoice(invoice_id)
        stored = self._invoice(invoice_id)
        invoice.update(infusion_minutes=stored.get("infusion_minutes"), completed_at=stored.get("completed_at"))
        try:
            facts = self.intake.superbill_facts(invoice["patient_id"])
        except MethodNotFound as exc:
            raise SuperbillUnavailable("intake cannot give the superbill's diagnosis codes yet",
                                       retry_after=60) from exc
        return _pdf(f"superbill-{invoice['id']}.pdf", documents.superbill_pdf(PRACTICE.effective_at(), invoice,
                                                                               facts))

    # --- finance exports and reconciliation ---------------------------------------------------------------

    @rpc
    def export_page(self, kind: str, date_from: str, date_to: str, cursor: str | None = None,
                    limit: int | None = None, format: str | None = None) -> dict[str, Any]:
        """One page of a finance export for ``[date_from, date_to]`` (UTC days) and the next page's cursor; the
        caller pages through, so no answer holds the whole export. The daily summary pages by week. With
        ``format`` (``csv``, ``jsonl``) the page is also given as ``text`` (the CSV header on the first page).
        Every page says how many journal entries it covered (``entries``); the first also how many the whole
        export will read (``total_entries``), for a progress bar."""
        page = self._export_rows(kind, date_from, date_to, cursor, limit)
        if format is not None:
            if format not in exports.FORMATS:
                raise InvalidInput("unknown format", errors={"format": [f"one of {', '.join(exports.FORMATS)}"]})
            page["text"] = "".join(exports.encoded(kind, format, page["rows"], header=cursor is None))
        return page

    def _export_rows(self, kind: str, date_from: str, date_to: str, cursor: str | None,
                     limit: int | None) -> dict[str, Any]:
        asked = validated(ExportRequestSchema(), {"kind": kind, "date_from": date_from, "date_to": date_to})
        start, end = exports.day_bounds(asked["date_from"], asked["date_to"])
        query: dict[str, Any] = {"posted_at": {"$gte": start, "$lt": end}}
        if exports.ENTRY_KINDS[kind] is not None:
            query["kind"] = {"$in": list(exports.ENTRY_KINDS[kind])}
        counted = {} if cursor else {"total_entries": self.store.db.journal.count_documents(query)}
        if kind == "daily-revenue":
            week_start = datetime.fromisoformat(cursor) if cursor else start
            week_end = min(week_start + timedelta(days=7), end)
            found = exports.Counted(self.store.db.journal.find(
                {**query, "posted_at": {"$gte": week_start, "$lt": week_end}},
                {"outbox": 0}).sort([("posted_at", 1), ("_id", 1)]))
            return {"rows": list(exports.rows(kind, found)), "entries": found.count,
                    "next_cursor": week_end.isoformat() if week_end < end else None, **counted}
        page = fetch_page(self.store.db.journal, query, "posted_at", cursor=cursor, limit=limit,
                          projection={"outbox": 0})
        return {"rows": list(exports.rows(kind, page.items)), "entries": len(page.items),
                "next_cursor": page.next_cursor, **counted}

    @rpc
    def reconcile(self, date_from: str, date_to: str) -> dict[str, Any]:
        """The ledger against Stripe's balance transactions for ``[date_from, date_to]``: every difference."""
        asked = validated(ExportRequestSchema(), {"kind": "ledger", "date_from": date_from, "date_to": date_to})
        start, end = exports.day_bounds(asked["date_from"], asked["date_to"])
        entries = self.store.db.journal.find({"posted_at": {"$gte": start, "$lt": end},
                                              "kind": {"$in": list(exports.STRIPE_KINDS)}}, {"outbox": 0})
        transactions = self._stripe("balance_transactions", int(start.timestamp()),
                                    int(end.timestamp()))
        differences = exports.reconcile(exports.ledger_movements(entries), transactions)
        return {"date_from": date_from, "date_to": date_to, "stripe_transactions": len(transactions),
                "differences": differences}

    # --- Stripe's webhooks ---------------------------------------------------------------------------------

    @rpc
    def handle_stripe_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """A verified Stripe event (the gateway checked its signature over the raw body). De-duplicated by its
        id; handled by reading the object's current state at Stripe, so their order does not matter."""
        event_id, kind = str(event.get("id")), str(event.get("type"))
        if self.store.db.stripe_events.find_one({"_id": event_id}) is not None:
            return {"event_id": event_id, "duplicate": True}
        about = (event.get("data") or {}).get("object") or {}
        if kind in ("payment_intent.succeeded", "payment_intent.payment_failed"):
            self._payment_intent_changed(self._stripe("payment_intent", str(about["id"])))
        elif kind == "charge.refunded":
            for refund in self._stripe("refunds_of_charge", str(about["id"])):
                if "refund_key" in refund.metadata:
                    self._record_refund(refund, refund.metadata)
                else:
                    log.warning("refund %s was not made by billing: left for reconciliation", refund.refund_id)
        elif kind == "charge.dispute.created":
            self._dispute_opened(about)
        try:
            self.store.db.stripe_events.insert_one({"_id": event_id, "type": kind, "received_at": utcnow()})
        except DuplicateKeyError:
            pass
        return {"event_id": event_id, "duplicate": False}

    def _payment_intent_changed(self, outcome: PaymentOutcome) -> None:
        kind = outcome.metadata.get("kind")
        if outcome.status == "succeeded" and kind == "deposit":
            self._deposit_succeeded(outcome)
        elif outcome.status == "succeeded" and kind == "balance":
            self._balance_succeeded(outcome)
        elif outcome.status == "succeeded" and kind == "package":
            self._package_paid(outcome)
        elif outcome.status == "failed" and kind == "balance":
            invoice = self._invoice(outcome.metadata["invoice_id"])
            self._balance_failed(invoice, outcome.amount_cents, outcome.failure_code or "card_declined")

    def _dispute_opened(self, dispute: dict[str, Any]) -> None:
        charge = self._stripe("charge", str(dispute["charge"]))
        intent = self._stripe("payment_intent", str(charge.get("payment_intent")))
        patient_id = intent.metadata.get("patient_id", "unknown")
        self.store.insert_once("journal", ledger.dispute_opened(str(dispute["id"]), patient_id,
                                                                int(dispute["amount"]), str(dispute["currency"]),
                                                                utcnow()))
        log.warning("dispute %s opened on charge %s", dispute["id"], dispute["charge"])

    def _stripe(self, operation: str, *args: Any) -> Any:
        """One call of the Stripe adapter; Stripe not answering (or not configured) is a 503 to retry."""
        if self.stripe is None:
            raise PaymentsUnavailable("payments are not configured here (STRIPE_API_KEY)", retry_after=60)
        try:
            return getattr(self.stripe, operation)(*args)
        except StripeUnavailable as exc:
            raise PaymentsUnavailable("the payment processor did not answer; try again", retry_after=5) from exc


def _pdf(filename: str, content: bytes) -> dict[str, str]:
    return {"filename": filename, "content_type": "application/pdf",
            "content_base64": base64.b64encode(content).decode()}


def _outcome_fields(outcome: PaymentOutcome) -> dict[str, Any]:
    return {"status": outcome.status, "payment_intent_id": outcome.payment_intent_id,
            "client_secret": outcome.client_secret, "amount_cents": outcome.amount_cents,
            "currency": outcome.currency}


def _payment_fields(outcome: PaymentOutcome, patient_id: str) -> dict[str, Any]:
    return {"patient_id": patient_id, "payment_intent_id": outcome.payment_intent_id,
            "amount_cents": outcome.amount_cents, "currency": outcome.currency}


def _cash(entry: dict[str, Any]) -> int:
    """What an entry moved into (positive) or out of (negative) Stripe, before Stripe's fee."""
    return sum(item["amount_cents"] for item in entry["lines"]
               if item["account"] == "cash_at_stripe" and ("invoice_id" in item or "hold_id" in item))


def _paid(entries: list[dict[str, Any]]) -> int:
    return sum(_cash(entry) for entry in entries if entry["kind"] in ("deposit", "balance", "refund"))


def _refundable(entries: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Each payment of an invoice (newest first) with what is left of it to refund."""
    left: dict[str, int] = {}
    for entry in entries:
        if entry["kind"] in ("deposit", "balance"):
            left[entry["payment_intent_id"]] = left.get(entry["payment_intent_id"], 0) + _cash(entry)
    for entry in entries:
        if entry["kind"] == "refund" and entry.get("payment_intent_id") in left:
            left[entry["payment_intent_id"]] += _cash(entry)
    return [(intent, amount) for intent, amount in reversed(left.items()) if amount > 0]
