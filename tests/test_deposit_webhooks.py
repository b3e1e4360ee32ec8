"""A deposit finished by 3-D Secure, end to end: the real processes, the gateway's signed webhook route and the
Stripe stand-in sending its events three times, newest first. The payment is recorded once, and the ledger
sums to zero.
"""

from __future__ import annotations

import pymongo
import requests

from chassis.testing import wait_for
from services.billing import ledger
from services.intake.walkthrough import clear_over_http
from tests.test_patient_journey import DANA, next_week_at, nurse_record


def test_a_3d_secure_deposit_is_recorded_once_from_webhooks_sent_three_times(platform, mongo_uri):
    registered = requests.post(f"{platform.url}/v1/patients", json={**DANA, "email": "dana.3ds@example.com"},
                               headers={"Idempotency-Key": "dana-3ds-signup"})
    patient_id = registered.json()["id"]
    dana = platform.token("patient", patient_id)
    admin = platform.token("admin", "ops-1")
    requests.put(f"{platform.url}/v1/nurses/nur_dara", headers=admin,
                 json=nurse_record("Dara Quinn, RN", ["CO"])).raise_for_status()
    clear_over_http(platform.url, patient_id, dana, admin)
    held = requests.post(f"{platform.url}/v1/holds", headers=dana, json={
        "patient_id": patient_id, "visit_type": "iv-mood", "start_at": next_week_at(18), "nurse_id": "nur_dara"})
    assert held.status_code == 201, held.text
    hold_id, quote = held.json()["id"], held.json()["quote"]
    stand_in = platform.env["STRIPE_API_BASE"]
    requests.post(f"{stand_in}/_config/double/webhooks", json={"duplicates": 3, "newest_first": True},
                  timeout=5).raise_for_status()

    someone_else = requests.post(f"{platform.url}/v1/holds/{hold_id}/deposit",
                                 headers=platform.token("patient", "pat_someone_else"),
                                 json={"payment_method_id": "pm_card_visa"})
    challenged = requests.post(f"{platform.url}/v1/holds/{hold_id}/deposit", headers=dana,
                               json={"payment_method_id": "pm_card_threeDSecure2Required"})

    assert someone_else.status_code == 403
    assert challenged.status_code == 200, challenged.text
    answer = challenged.json()
    assert (answer["status"], answer["amount_cents"]) == ("requires_action", quote["deposit_cents"])
    requests.post(f"{stand_in}/v1/payment_intents/{answer['payment_intent_id']}/_authenticate", timeout=5,
                  data={"client_secret": answer["client_secret"], "success": "true", "key": "pk_test_stand_in"}
                  ).raise_for_status()  # what Stripe.js does when Dana passes the challenge

    balance = wait_for(lambda: requests.get(f"{platform.url}/v1/patients/{patient_id}/balance", headers=dana
                                            ).json()["deposits_held_cents"], timeout=20)
    assert balance == quote["deposit_cents"]
    journal = pymongo.MongoClient(mongo_uri)[platform.env["DATABASE_PREFIX"] + "billing"].journal
    wait_for(lambda: journal.database.stripe_events.count_documents({}) >= 1)
    assert journal.count_documents({"kind": "deposit", "hold_id": hold_id}) == 1
    assert ledger.problems(list(journal.find())) == []
