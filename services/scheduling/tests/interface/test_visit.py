"""The home visit over RPC on the real broker and store: from the hold to the discharge, the assigned nurse
records each step (a ``visit.*`` event each), the pre-dose checks can abort it, vitals are flagged or refused,
and the controlled-substance record is append-only with an export by date."""

from datetime import UTC, datetime, timedelta

import pytest

from chassis.errors import InvalidInput
from services.scheduling.exceptions import IllegalVisitStep, NotYourVisit, VisitStepRefused
from services.scheduling.tests.interface.support import a_bookable_start, book, call
from services.scheduling.tests.interface.test_holds import deposit_paid

NURSE = {"role": "nurse", "id": "nur_kim"}
ADMIN = {"role": "admin", "id": "ops-1"}
GOOD_VITALS = {"systolic": 128, "diastolic": 82, "heart_rate": 76, "spo2": 98}
CHECKS = {"fasting_hours": 6, "escort_present": True, "consent_reconfirmed": True, "pregnancy_possible": False,
          "weight_kg": 70, "baseline": GOOD_VITALS}


def step(scheduling, appointment_id: str, name: str, actor: dict = NURSE, **fields) -> dict:
    return call(scheduling, "record_visit_step", appointment_id, {"step": name, **fields}, actor)


def en_route(scheduling, appointment_id: str, actor: dict = NURSE) -> dict:
    now = datetime.now(UTC)
    return step(scheduling, appointment_id, "en_route", actor, arrival_from=now.isoformat(),
                arrival_to=(now + timedelta(minutes=30)).isoformat())


def medication(scheduling, appointment_id: str, kind: str, amount_mg: str, **extra) -> dict:
    return call(scheduling, "record_medication", appointment_id,
                {"kind": kind, "lot_number": "KET-2026-114", "amount_mg": amount_mg, **extra}, NURSE)


@pytest.fixture
def appointment(scheduling, register, add_nurse):
    add_nurse("nur_kim", "CO")
    return book(scheduling, register(), a_bookable_start())


def test_a_whole_visit_from_hold_to_discharge(scheduling, register, add_nurse, scheduling_events):
    add_nurse("nur_kim", "CO")
    hold = call(scheduling, "place_hold", {"patient_id": register(), "visit_type": "iv-mood",
                                           "start_at": a_bookable_start()})
    deposit_paid(scheduling, hold)
    visit_id = call(scheduling, "get_hold", hold["id"])["appointment_id"]

    en_route(scheduling, visit_id)
    step(scheduling, visit_id, "arrived", patient_late_minutes=5)
    step(scheduling, visit_id, "pre_checks", pre_checks=CHECKS)
    drawn = medication(scheduling, visit_id, "drawn", "50")
    step(scheduling, visit_id, "started")
    flagged = call(scheduling, "record_vitals", visit_id, {"systolic": 186, "diastolic": 100, "heart_rate": 96,
                                                           "spo2": 97}, NURSE)
    given = medication(scheduling, visit_id, "given", "35")
    wasted = medication(scheduling, visit_id, "wasted", "15", witness="Jordan Lee, RN")
    step(scheduling, visit_id, "completed", infusion_minutes=42)
    visit = step(scheduling, visit_id, "discharged", escort_present=True, post_care_instructions_given=True)

    assert (visit["state"], visit["status"], visit["infusion_minutes"]) == ("discharged", "discharged", 42)
    assert visit["patient_late_minutes"] == 5  # the nurse's note on arrival, kept on the visit
    assert [s["step"] for s in visit["steps"]] == ["en_route", "arrived", "pre_checks", "started", "completed",
                                                   "discharged"]
    assert flagged["flags"] == ["systolic"]  # above 180 during the infusion: kept, flagged
    assert (drawn["mg_per_kg"], given["mg_per_kg"], given["amount_mg"]) == (None, "0.500", "35.000")
    assert wasted["witness"] == "Jordan Lee, RN"
    for kind in ("en_route", "arrived", "pre_checked", "started", "completed", "discharged"):
        (event,) = scheduling_events.of_type(f"visit.{kind}", 1)
        assert event["payload"]["appointment_id"] == visit_id
        assert not {"systolic", "baseline", "weight_kg", "amount_mg"} & set(event["payload"])  # no health data
    assert scheduling_events.of_type("visit.completed", 1)[0]["payload"]["infusion_minutes"] == 42


@pytest.mark.parametrize(("checks", "reason", "chargeable"), [
    ({"fasting_hours": 2}, "not_fasted", True),
    ({"escort_present": False}, "no_escort", True),
    ({"pregnancy_possible": None}, "possible_pregnancy", False),
    ({"baseline": {**GOOD_VITALS, "systolic": 168}}, "baseline_vitals_out_of_limits", False),  # above 160/90
    ({"baseline": {**GOOD_VITALS, "heart_rate": 104}}, "baseline_vitals_out_of_limits", False),
])
def test_failed_pre_checks_abort_the_visit_with_the_reason_and_who_pays(scheduling, appointment, scheduling_events,
                                                                         checks, reason, chargeable):
    en_route(scheduling, appointment["id"])
    step(scheduling, appointment["id"], "arrived")

    visit = step(scheduling, appointment["id"], "pre_checks", pre_checks={**CHECKS, **checks})

    assert (visit["state"], visit["abort_reason"], visit["chargeable"]) == ("aborted", reason, chargeable)
    (event,) = scheduling_events.of_type("visit.aborted", 1)
    assert (event["payload"]["reason"], event["payload"]["chargeable"]) == (reason, chargeable)
    with pytest.raises(IllegalVisitStep):
        step(scheduling, appointment["id"], "started")


@pytest.mark.parametrize(("steps", "illegal"), [
    ([], "started"),                          # nothing before it
    (["en_route"], "en_route"),               # the same step twice
    (["en_route", "arrived"], "completed"),   # skipping the checks and the infusion
])
def test_steps_out_of_order_are_409s_and_change_nothing(scheduling, appointment, steps, illegal):
    for name in steps:
        en_route(scheduling, appointment["id"]) if name == "en_route" else step(scheduling, appointment["id"], name)
    with pytest.raises(IllegalVisitStep) as refused:
        if illegal == "en_route":
            en_route(scheduling, appointment["id"])
        else:
            step(scheduling, appointment["id"], illegal, infusion_minutes=40)
    assert refused.value.status == 409
    assert len(call(scheduling, "record_visit_step", appointment["id"], {"step": "aborted", "reason": "nurse_unable"},
                    ADMIN)["steps"]) == len(steps) + 1  # an admin may record too; nothing was added by the refusal


def test_only_the_assigned_nurse_or_an_admin_records_the_visit(scheduling, appointment):
    with pytest.raises(NotYourVisit) as refused:
        en_route(scheduling, appointment["id"], actor={"role": "nurse", "id": "nur_zoe"})
    assert refused.value.status == 403
    assert en_route(scheduling, appointment["id"], actor=ADMIN)["state"] == "en_route"


def test_no_show_and_rule_breaking_steps(scheduling, appointment, scheduling_events):
    en_route(scheduling, appointment["id"])
    step(scheduling, appointment["id"], "arrived")
    with pytest.raises(VisitStepRefused) as unknown:
        step(scheduling, appointment["id"], "aborted", reason="bad_weather")
    assert unknown.value.details["reason"] == "unknown_abort_reason"

    visit = step(scheduling, appointment["id"], "no_show")

    assert (visit["state"], visit["status"]) == ("no_show", "no_show")
    (event,) = scheduling_events.of_type("appointment.no_show", 1)
    assert event["payload"]["appointment_id"] == appointment["id"]


def test_impossible_vitals_a_waste_without_a_witness_and_a_discharge_alone_are_refused(scheduling, appointment):
    en_route(scheduling, appointment["id"])
    step(scheduling, appointment["id"], "arrived")
    with pytest.raises(VisitStepRefused):  # a reading no patient can have, even at the pre-checks
        step(scheduling, appointment["id"], "pre_checks", pre_checks={**CHECKS, "baseline": {**GOOD_VITALS,
                                                                                            "spo2": 30}})
    step(scheduling, appointment["id"], "pre_checks", pre_checks=CHECKS)
    with pytest.raises(VisitStepRefused) as refused:
        call(scheduling, "record_vitals", appointment["id"], {**GOOD_VITALS, "heart_rate": 400}, NURSE)
    assert refused.value.details["reason"] == "vitals_out_of_physiological_range"
    with pytest.raises(InvalidInput) as unwitnessed:
        medication(scheduling, appointment["id"], "wasted", "10")
    assert list(unwitnessed.value.details["errors"]) == ["witness"]
    step(scheduling, appointment["id"], "started")
    step(scheduling, appointment["id"], "completed", infusion_minutes=40)
    with pytest.raises(VisitStepRefused) as alone:  # discharged only to a responsible adult
        step(scheduling, appointment["id"], "discharged", escort_present=False, post_care_instructions_given=True)
    assert alone.value.details["reason"] == "discharge_needs_escort_and_instructions"
    assert step(scheduling, appointment["id"], "discharged", escort_present=True,
                post_care_instructions_given=True)["state"] == "discharged"


def test_the_controlled_substance_record_is_corrected_by_new_entries_and_exported_by_date(scheduling, appointment):
    en_route(scheduling, appointment["id"])
    step(scheduling, appointment["id"], "arrived")
    step(scheduling, appointment["id"], "pre_checks", pre_checks=CHECKS)
    mistaken = medication(scheduling, appointment["id"], "given", "53")
    correction = medication(scheduling, appointment["id"], "correction", "35", corrects_entry_id=mistaken["id"],
                            note="53 mg was a typing error: 35 mg given")
    today = str(datetime.now(UTC).date())

    log = call(scheduling, "controlled_substance_log", {"from": today, "to": today})

    assert [entry["id"] for entry in log["items"]] == [mistaken["id"], correction["id"]]  # both kept, in order
    assert log["items"][0]["amount_mg"] == "53.000" and log["items"][1]["corrects_entry_id"] == mistaken["id"]
    assert {entry["lot_number"] for entry in log["items"]} == {"KET-2026-114"}
    yesterday = str(datetime.now(UTC).date() - timedelta(days=1))
    assert call(scheduling, "controlled_substance_log", {"from": yesterday, "to": yesterday})["items"] == []


def test_a_reading_later_than_the_interval_is_noted_and_the_visit_says_when_the_next_is_due(scheduling, appointment):
    en_route(scheduling, appointment["id"])
    assert step(scheduling, appointment["id"], "arrived")["patient_late_minutes"] == 0  # on time when not noted
    step(scheduling, appointment["id"], "pre_checks", pre_checks=CHECKS)
    started = step(scheduling, appointment["id"], "started")
    first = call(scheduling, "record_vitals", appointment["id"], GOOD_VITALS, NURSE)
    taken = datetime.fromisoformat(first["taken_at"])
    late = call(scheduling, "record_vitals", appointment["id"],  # every 10 minutes: this one 14 after the first
                {**GOOD_VITALS, "taken_at": (taken + timedelta(minutes=14)).isoformat()}, NURSE)

    assert datetime.fromisoformat(started["next_vitals_due_at"]) - datetime.fromisoformat(
        started["steps"][-1]["at"]) == timedelta(minutes=10)
    assert (first["late_reading"], first["overdue_by_minutes"]) == (False, 0)
    assert (late["late_reading"], late["overdue_by_minutes"]) == (True, 4)
    visit = step(scheduling, appointment["id"], "aborted", reason="adverse_reaction")
    assert [reading["late_reading"] for reading in visit["vitals"]] == [False, True]
    assert visit["next_vitals_due_at"] is None  # the infusion is over


def test_a_drug_drawn_before_an_abort_is_recorded_wasted_and_corrected_after_the_visit_ends(scheduling, appointment):
    en_route(scheduling, appointment["id"])
    step(scheduling, appointment["id"], "arrived")
    step(scheduling, appointment["id"], "pre_checks", pre_checks=CHECKS)
    drawn = medication(scheduling, appointment["id"], "drawn", "50")
    step(scheduling, appointment["id"], "aborted", reason="iv_not_placed")

    wasted = medication(scheduling, appointment["id"], "wasted", "50", witness="Jordan Lee, RN")
    corrected = medication(scheduling, appointment["id"], "correction", "45", corrects_entry_id=drawn["id"],
                           note="45 mg was drawn, not 50")
    with pytest.raises(IllegalVisitStep) as refused:  # no drug is drawn or given for a visit that ended
        medication(scheduling, appointment["id"], "given", "35")

    assert (wasted["kind"], wasted["witness"], corrected["corrects_entry_id"]) == ("wasted", "Jordan Lee, RN",
                                                                                  drawn["id"])
    assert refused.value.details["reason"] == "visit_over"
    today = str(datetime.now(UTC).date())
    log = call(scheduling, "controlled_substance_log", {"from": today, "to": today})
    assert [entry["kind"] for entry in log["items"]] == ["drawn", "wasted", "correction"]


def test_a_correction_after_the_discharge_is_recorded(scheduling, appointment):
    en_route(scheduling, appointment["id"])
    step(scheduling, appointment["id"], "arrived")
    step(scheduling, appointment["id"], "pre_checks", pre_checks=CHECKS)
    step(scheduling, appointment["id"], "started")
    given = medication(scheduling, appointment["id"], "given", "53")
    step(scheduling, appointment["id"], "completed", infusion_minutes=40)
    step(scheduling, appointment["id"], "discharged", escort_present=True, post_care_instructions_given=True)

    corrected = medication(scheduling, appointment["id"], "correction", "35", corrects_entry_id=given["id"])

    assert (corrected["kind"], corrected["corrects_entry_id"]) == ("correction", given["id"])
