"""The quote RPC on the real broker and store: a hold's quote is kept, asked again it is the same answer,
and the visit booked from the hold is invoiced at the price it was quoted."""

from datetime import UTC, datetime, timedelta

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_hook

import services.scheduling.events  # noqa: F401  (registers the appointment.booked schema for make_event)
from chassis.errors import InvalidInput
from chassis.events import make_event
from chassis.ids import derived_id
from chassis.testing import wait_for
from services.billing.service import BillingService

START = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)
EXPIRES = datetime(2026, 11, 25, 12, 10, tzinfo=UTC)


@pytest.fixture
def billing(container_factory, service_config):
    container = container_factory(BillingService, service_config)
    container.start()
    return container


def quote(container, request):
    with entrypoint_hook(container, "quote") as entrypoint:
        return entrypoint(request)


def a_hold_quote(hold_id: str = "hld_1", **extra) -> dict:
    return {"patient_id": "pat_ana", "visit_type": "iv-mood", "hold_id": hold_id, "start_at": START.isoformat(),
            "expires_at": EXPIRES.isoformat(), "postal_code": "80401", **extra}


def test_a_website_quote_is_itemised_with_deposit_balance_and_policy(billing, mongo_client, database_prefix):
    answer = quote(billing, {"visit_type": "iv-pain", "discount_codes": ["veteran"], "postal_code": "59001"})

    assert [(line["code"], line["amount_cents"]) for line in answer["lines"]] == [
        ("iv-pain", 100000), ("travel-extended", 10000)]
    assert (answer["discount_cents"], answer["total_cents"], answer["deposit_cents"], answer["balance_cents"]) == (
        10000, 100000, 25000, 75000)
    assert "48 hours or more" in answer["cancellation_policy"]
    assert answer["catalogue_version"] == "2026-11-01"
    assert mongo_client[database_prefix + "billing"].quotes.count_documents({}) == 0  # nothing kept


def test_a_holds_quote_is_kept_once_and_asked_again_is_the_same_answer(billing, mongo_client, database_prefix):
    first = quote(billing, a_hold_quote())
    again = quote(billing, a_hold_quote(discount_codes=["veteran"]))  # a retry cannot change the kept quote

    assert again == first
    assert first["quote_id"] == derived_id("quo", "hld_1")
    kept = mongo_client[database_prefix + "billing"].quotes.find_one({"hold_id": "hld_1"})
    assert (kept["patient_id"], kept["deposit_cents"], kept["expires_at"].replace(tzinfo=UTC)) == (
        "pat_ana", 16250, EXPIRES)


@pytest.mark.parametrize(("request_", "field"), [
    ({"visit_type": "iv-party"}, "visit_type"),
    ({"visit_type": "iv-mood", "discount_codes": ["everyone"]}, "discount_codes"),
    ({"visit_type": "iv-mood", "hold_id": "hld_2"}, "patient_id"),
    ({"visit_type": "iv-mood", "postal_code": "8020"}, "postal_code"),
    ({"visit_type": "iv-mood", "total_cents": 1}, "total_cents"),
])
def test_a_bad_quote_request_is_refused_naming_the_field(billing, request_, field):
    with pytest.raises(InvalidInput) as refused:
        quote(billing, request_)
    assert field in refused.value.details["errors"]


def test_a_visit_booked_from_a_hold_is_invoiced_at_the_quoted_price(billing, service_config, mongo_client,
                                                                    database_prefix):
    kept = quote(billing, a_hold_quote("hld_3", discount_codes=["veteran"]))
    booked = make_event("scheduling", "appointment.booked", {
        "appointment_id": "apt_3", "patient_id": "pat_ana", "nurse_id": "nur_kim", "visit_type": "iv-mood",
        "start_at": START, "end_at": START + timedelta(hours=2), "time_zone": "America/Denver",
    }, correlation_id="corr-test")
    booked["payload"].update(hold_id="hld_3", quote_id=kept["quote_id"])  # the contract's optional fields
    event_dispatcher(service_config)("scheduling", booked["type"], booked)

    invoices = mongo_client[database_prefix + "billing"].invoices
    invoice = wait_for(lambda: invoices.find_one({"appointment_id": "apt_3"}))

    assert (invoice["total_cents"], invoice["discount_cents"], invoice["deposit_cents"]) == (59000, 6000, 15000)
    assert invoice["quote_id"] == kept["quote_id"]
    assert invoice["line_items"] == kept["lines"]
