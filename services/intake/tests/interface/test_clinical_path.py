"""Intake's clinical path over RPC, on the real broker and store: contact changes announced without clinical
fields, screening history kept, the review queue (urgent first, then oldest), one decision when two clinicians
decide at once, and nothing clinical on the broker."""

from contextlib import ExitStack

import eventlet
import pytest
from kombu import Connection, Queue
from nameko.events import get_event_exchange
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy

from chassis.errors import InvalidInput
from chassis.testing import wait_for
from services.intake.exceptions import EmailTaken, PatientAlreadyRegistered
from services.intake.tests.interface.test_intake_service import a_registration, call
from services.intake.walkthrough import STANDARD_PLAN, UNREMARKABLE_ANSWERS, clear_over_rpc

#: Every payload field intake's events may carry (docs/events.md): ids, times, contact details, codes.
EVENT_FIELDS = {"patient_id", "first_name", "last_name", "email", "phone", "time_zone", "sms_opt_in", "locale",
                "state", "postal_code", "screening_id", "instrument", "submitted_at", "review_id", "urgent",
                "clinician_id", "protocol_code", "planned_sessions", "reason_code", "consent_id", "document_version"}


@pytest.fixture
def rpc(intake):
    return lambda method, *args, **kwargs: call(intake, method, *args, **kwargs)


@pytest.fixture
def events(service_config):
    """Every event intake publishes, as (type, payload), collected while the test runs."""
    listener = Queue("test.intake-everything", exchange=get_event_exchange("intake", service_config),
                     routing_key="#", durable=False)
    with Connection(service_config["AMQP_URI"]) as connection:
        bound = listener(connection.default_channel)
        bound.declare()

        def received(count: int) -> list[tuple[str, dict]]:
            seen: list[tuple[str, dict]] = []

            def more():
                while (message := bound.get(no_ack=True, accept=["json"])) is not None:
                    seen.append((message.decode()["type"], message.decode()["payload"]))
                return seen if len(seen) >= count else None
            return wait_for(more)
        yield received


def screen_and_consent(rpc, patient_id: str) -> None:
    for instrument, answers in UNREMARKABLE_ANSWERS.items():
        rpc("submit_screening", patient_id, {"instrument": instrument, "answers": answers})
    rpc("sign_consent", patient_id, {"document_version": rpc("current_consent_document")["version"]})


def test_a_contact_change_is_announced_with_only_the_changed_non_clinical_fields(rpc, events):
    ana = rpc("register_patient", a_registration())["id"]
    rpc("update_patient", ana, {"escort": {"name": "Sam", "phone": "+13035550111", "relationship": "friend"}})
    moved = rpc("update_patient", ana, {"phone": "+15125550100", "time_zone": "America/Chicago", "address": {
        "line1": "1 Congress Ave", "city": "Austin", "state": "TX", "postal_code": "78701"}})

    assert (moved["address"]["state"], moved["phone"], moved["escort"]["name"]) == ("TX", "+15125550100", "Sam")
    received = events(2)
    assert received[1] == ("patient.updated", {"patient_id": ana, "phone": "+15125550100",
                                               "time_zone": "America/Chicago", "state": "TX",
                                               "postal_code": "78701"})
    assert [kind for kind, _ in received] == ["patient.registered", "patient.updated"]  # the escort: no event
    with pytest.raises(InvalidInput) as refused:
        rpc("update_patient", ana, {"escort": {"name": "Sam"}})  # a nested field is given whole
    assert sorted(refused.value.details["errors"]["escort"]) == ["phone", "relationship"]
    with pytest.raises(InvalidInput):
        rpc("update_patient", ana, {})


def test_the_patients_language_reaches_notifications_at_registration_and_when_changed(rpc, events):
    ana = rpc("register_patient", a_registration(locale="es-US"))["id"]
    rpc("update_patient", ana, {"locale": "en"})

    registered, updated = events(2)
    assert registered[1]["locale"] == "es-US"
    assert updated == ("patient.updated", {"patient_id": ana, "locale": "en"})
    with pytest.raises(InvalidInput) as refused:
        rpc("update_patient", ana, {"locale": "spanish"})
    assert list(refused.value.details["errors"]) == ["locale"]


def test_an_email_another_patient_has_cannot_be_taken_or_registered_and_nothing_is_revealed(rpc):
    ana = rpc("register_patient", a_registration())
    bea = rpc("register_patient", a_registration(email="bea@example.com"))["id"]

    with pytest.raises(EmailTaken) as taken:
        rpc("update_patient", bea, {"email": "ANA@example.com"})
    assert taken.value.status == 409
    with pytest.raises(PatientAlreadyRegistered) as refused:
        rpc("register_patient", a_registration(first_name="Mallory"))
    said = f"{refused.value.detail} {refused.value.details}"
    assert ana["id"] not in said and "Ana" not in said and "Diaz" not in said


def test_every_submission_is_kept_with_its_scores_for_clinicians_and_without_them_for_the_patient(rpc):
    ana = rpc("register_patient", a_registration())["id"]
    for total in (15, 6):
        rpc("submit_screening", ana, {"instrument": "phq-9", "answers": {
            f"phq9_{n}": min(3, max(0, total - 3 * (n - 1))) for n in range(1, 10)}})

    history = rpc("list_screenings", ana, "clinician")["items"]
    assert [(s["total"], s["band"]) for s in history] == [(6, "mild"), (15, "moderately severe")]  # newest first
    assert all(s["instruments_version"] and s["answers"] for s in history)
    for submitted in rpc("list_screenings", ana, "patient")["items"]:
        assert set(submitted) == {"id", "patient_id", "instrument", "submitted_at"}


def test_a_risk_answer_gets_crisis_resources_instead_of_a_decision(rpc):
    ana = rpc("register_patient", a_registration())["id"]
    receipt = rpc("submit_screening", ana, {"instrument": "phq-9", "answers": {
        **{f"phq9_{n}": 0 for n in range(1, 9)}, "phq9_9": 1}})

    assert any("988" in resource["contact"] for resource in receipt["crisis_resources"])
    assert "total" not in receipt and "band" not in receipt
    explanation = rpc("explain_eligibility", ana, "patient")
    assert explanation["reasons"] == ["urgent_review_open"] and explanation["crisis_resources"]
    assert explanation.get("contraindications") is None
    assert rpc("booking_eligibility", ana, "iv-mood")["reasons"][0] == "urgent_review_open"


def test_the_queue_lists_urgent_reviews_first_then_the_oldest_and_a_clinician_only_their_patients(rpc):
    first, second, risky = (rpc("register_patient", a_registration(email=f"{name}@example.com"))["id"]
                            for name in ("first", "second", "risky"))
    rpc("assign_clinician", first, "clin_rivera")
    rpc("assign_clinician", risky, "clin_rivera")
    screen_and_consent(rpc, first)
    screen_and_consent(rpc, second)
    rpc("submit_screening", risky, {"instrument": "risk-screen", "answers": {
        f"risk_{n}": int(n == 2) for n in range(1, 7)}})

    queue = rpc("list_reviews")["items"]
    assert [(r["patient_id"], r["urgent"]) for r in queue] == [(risky, True), (first, False), (second, False)]
    assert [r["patient_id"] for r in rpc("list_reviews", clinician_id="clin_rivera")["items"]] == [risky, first]
    page = rpc("list_reviews", limit=2)
    assert [r["patient_id"] for r in rpc("list_reviews", cursor=page["next_cursor"])["items"]] == [second]


def test_two_decisions_at_once_on_one_review_one_stands(intake, rpc, service_config):
    ana = rpc("register_patient", a_registration())["id"]
    screen_and_consent(rpc, ana)
    review_id = rpc("list_reviews", patient_id=ana)["items"][0]["id"]
    decisions = [{"decision": "approve", "plan": STANDARD_PLAN},
                 {"decision": "decline", "reason_code": "clinical_judgement"}]
    with ExitStack() as stack:
        proxies = [stack.enter_context(ServiceRpcProxy("intake", service_config, timeout=30)) for _ in decisions]

        def decide(pair):
            proxy, decision = pair
            try:
                return proxy.decide_review(review_id, decision, "ops-1", "admin")
            except RemoteError as refused:
                return refused

        outcomes = list(eventlet.GreenPool(2).imap(decide, zip(proxies, decisions, strict=True)))

    decided = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, RemoteError)]
    assert len(decided) == 1 and [r.exc_type for r in refused] == ["ReviewAlreadyDecided"]
    assert rpc("get_patient", ana)["status"] == {"approved": "cleared", "declined": "declined"}[decided[0]["status"]]


def test_nothing_clinical_reaches_the_broker(rpc, events):
    ana = rpc("register_patient", a_registration(medications={"text": "clonazepam", "names": ["clonazepam"]}))["id"]
    review = clear_over_rpc(rpc, ana)
    consent_id = rpc("get_review", review["id"])["consents"][0]["id"]
    rpc("revoke_consent", ana, consent_id)

    received = events(8)
    assert sorted(kind for kind, _ in received) == sorted([
        "patient.registered", "screening.submitted", "screening.submitted", "screening.submitted",
        "consent.signed", "review.requested", "patient.cleared", "consent.revoked"])
    for _, payload in received:
        assert set(payload) <= EVENT_FIELDS, payload


def test_superbill_facts_are_the_latest_referral_with_the_patient_identity(rpc):
    ana = rpc("register_patient", a_registration())["id"]
    assert rpc("superbill_facts", ana)["referring"] is None
    rpc("record_referral", ana, {"clinician_name": "Dr. Ada Park", "npi": "1234567893",
                                 "icd10_codes": ["F33.1", "F41.1"], "document_reference": "ref-1.pdf"}, ana)

    facts = rpc("superbill_facts", ana)
    assert facts == {"patient_id": ana, "name": "Ana Diaz", "date_of_birth": "1985-04-02",
                     "address": {"line1": "1 Main St", "city": "Denver", "state": "CO", "postal_code": "80202"},
                     "referring": {"name": "Dr. Ada Park", "npi": "1234567893"}, "icd10_codes": ["F33.1", "F41.1"]}
