"""Taking a newly registered patient to ``cleared`` the way a real one gets there, for the tests, the demo
seed (``make run``) and the bench: screening with answers that fire no rule, the current consent signed,
and an admin's approval with the standard depression protocol. Over RPC (``clear_over_rpc``) or through the
public API (``clear_over_http``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

#: What registration needs beyond contact details (the visit's escort, the dose's weight).
VISIT_DETAILS: dict[str, Any] = {
    "escort": {"name": "Jordan Rivera", "phone": "+13035550143", "relationship": "partner"},
    "emergency_contact": {"name": "Alex Rivera", "phone": "+13035550144", "relationship": "sibling"},
    "weight_kg": 70,
}
#: Answers to every required instrument that fire no contraindication rule and no risk item.
UNREMARKABLE_ANSWERS: dict[str, dict[str, int]] = {
    "health-history": {item: 0 for item in (
        "pregnant", "psychosis", "mania", "high_blood_pressure", "blood_pressure_uncontrolled",
        "heart_disease_unstable", "liver_disease_severe", "raised_pressure_head_or_eye", "substance_use",
        "bladder_inflammation", "seizures", "thyroid_disease", "lung_disease_severe")},
    "phq-9": {f"phq9_{n}": 2 for n in range(1, 9)} | {"phq9_9": 0},
    "risk-screen": {f"risk_{n}": 0 for n in range(1, 7)},
}
STANDARD_PLAN = {"protocol_code": "depression-induction", "dose_mg_per_kg": 0.5}


def clear_over_rpc(call: Callable[..., Any], patient_id: str) -> dict[str, Any]:
    """``call(method, *args)`` calls intake; returns the approved review."""
    for instrument, answers in UNREMARKABLE_ANSWERS.items():
        call("submit_screening", patient_id, {"instrument": instrument, "answers": answers})
    call("sign_consent", patient_id, {"document_version": call("current_consent_document")["version"]})
    review = call("list_reviews", patient_id=patient_id)["items"][0]
    return call("decide_review", review["id"], {"decision": "approve", "plan": STANDARD_PLAN}, "ops-clearance",
                "admin")


def clear_over_http(url: str, patient_id: str, patient: dict[str, str], admin: dict[str, str],
                    session: Any = requests) -> dict[str, Any]:
    """Through the gateway at ``url`` with the patient's and an admin's ``Authorization`` headers; returns the
    approved review. Raises ``requests.HTTPError`` at the first step refused."""
    def ok(response: requests.Response) -> dict[str, Any]:
        response.raise_for_status()
        return response.json()

    for instrument, answers in UNREMARKABLE_ANSWERS.items():
        ok(session.post(f"{url}/v1/patients/{patient_id}/screenings", headers=patient, timeout=30,
                        json={"instrument": instrument, "answers": answers}))
    document = ok(session.get(f"{url}/v1/consent-documents/current", headers=patient, timeout=30))
    ok(session.post(f"{url}/v1/patients/{patient_id}/consents", headers=patient, timeout=30,
                    json={"document_version": document["version"]}))
    review = ok(session.get(f"{url}/v1/reviews", headers=admin, params={"patient_id": patient_id},
                            timeout=30))["items"][0]
    return ok(session.post(f"{url}/v1/reviews/{review['id']}/decision", headers=admin, timeout=30,
                           json={"decision": "approve", "plan": STANDARD_PLAN}))
