"""``make run``: the whole platform on loopback, seeded with demo data, until Ctrl-C.

Starts the document store (mongoeco with its SQLite engine under ``.data/``, unless ``MONGO_URI`` points
at a MongoDB already), the Stripe stand-in (unless ``STRIPE_API_KEY`` is set: then billing talks to Stripe),
the four services and the gateway as separate ``nameko run`` processes, waits until ``/ready`` answers, seeds a
few nurses and one demo patient through the public API, writes ``.data/demo.env`` (ids and tokens for the
README's example) and supervises: Ctrl-C, or any process dying, stops every process it started. RabbitMQ is
started beforehand by ``deploy/ensure_rabbitmq.sh``.

With no ``SMTP_HOST`` it starts a local mail server (aiosmtpd) keeping every email the platform sends as a file
under ``.data/mail/``; with no ``SMS_API_BASE``, the SMS provider double keeping every text under ``.data/sms/``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.processes import BIN, ROOT, Platform, ProcessExited, default_env  # noqa: E402
from services.intake.walkthrough import VISIT_DETAILS, clear_over_http  # noqa: E402

DATA = ROOT / ".data"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def demo_nurse(name: str, states: list[str], home: tuple[float, float], time_zone: str, radius_miles: float,
               hours: tuple[str, str] = ("07:00", "19:00"), days: tuple[str, ...] = WEEKDAYS) -> dict:
    """A roster record: RN licences (expiring end of 2030), home base, travel radius, weekly hours."""
    return {"name": name, "time_zone": time_zone,
            "licences": [{"state": state, "number": f"RN-{state}-{name.split()[0].upper()}",
                          "expires_on": "2030-12-31"} for state in states],
            "home_base": {"latitude": home[0], "longitude": home[1]}, "service_area": {"radius_miles": radius_miles},
            "weekly_hours": {day: [{"start": hours[0], "end": hours[1]}] for day in days}}


DEMO_NURSES = {
    "nur_avery": demo_nurse("Avery Chen, RN", ["CO", "AZ", "NV"], (39.7313, -104.9811), "America/Denver", 30),
    "nur_blake": demo_nurse("Blake Ortiz, RN", ["CO", "TX"], (38.8388, -104.8145), "America/Denver", 80),
    "nur_casey": demo_nurse("Casey Morgan, RN", ["CA", "WA"], (34.0614, -118.2385), "America/Los_Angeles", 40,
                            days=WEEKDAYS[:5]),
}
DEMO_PATIENT = {
    "first_name": "Dana", "last_name": "Rivera", "email": "dana.rivera@example.com", "phone": "+13035550142",
    "date_of_birth": "1987-06-15",
    "address": {"line1": "1600 Glenarm Pl", "city": "Denver", "state": "CO", "postal_code": "80202"},
    "time_zone": "America/Denver", "sms_opt_in": True, **VISIT_DETAILS,
}


def token(role: str, subject: str) -> str:
    minted = subprocess.run([str(BIN / "infusion"), "token", "--role", role, "--sub", subject,
                             "--ttl", str(12 * 3600)], check=True, capture_output=True, text=True)
    return minted.stdout.strip()


def seed(gateway: str) -> str:
    """Demo nurses and one demo patient, through the public API (safe to repeat); the patient's id."""
    admin = token("admin", "demo-admin")
    for nurse_id, nurse in DEMO_NURSES.items():
        requests.put(f"{gateway}/v1/nurses/{nurse_id}", json=nurse, timeout=15,
                     headers={"Authorization": f"Bearer {admin}"}).raise_for_status()
    demo_file = DATA / "demo.json"
    demo = json.loads(demo_file.read_text()) if demo_file.exists() else {}
    if not demo.get("patient_id"):
        registered = requests.post(f"{gateway}/v1/patients", json=DEMO_PATIENT, timeout=15,
                                   headers={"Idempotency-Key": "demo-patient"})
        registered.raise_for_status()
        demo = {"patient_id": registered.json()["id"]}
        demo_file.write_text(json.dumps(demo))
    patient_id = demo["patient_id"]
    patient_headers = {"Authorization": f"Bearer {token('patient', patient_id)}"}
    eligibility = requests.get(f"{gateway}/v1/patients/{patient_id}/eligibility", headers=patient_headers, timeout=15)
    eligibility.raise_for_status()
    if eligibility.json()["status"] != "cleared":  # screened, consented and approved, so she can book infusions
        clear_over_http(gateway, patient_id, patient_headers, {"Authorization": f"Bearer {admin}"})
    (DATA / "demo.env").write_text(
        f"export GATEWAY={gateway}\nexport PATIENT_ID={patient_id}\n"
        f"export PATIENT_TOKEN={token('patient', patient_id)}\nexport ADMIN_TOKEN={admin}\n")
    return patient_id


def say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


def start_local_outboxes(platform: Platform) -> None:
    """Where messages go when no real provider is configured: files a new user can read."""
    if not platform.env.get("SMTP_HOST"):
        address = platform.start_helper("mail", ["services.notifications.mail_sink", "--port", "0",
                                                 "--directory", str(DATA / "mail")])
        host, port = address.split(":")
        platform.env.update(SMTP_HOST=host, SMTP_PORT=port, SMTP_SECURITY="none")
        say(f"email: no SMTP_HOST, so every email is kept as a file in .data/mail/ (local SMTP on {address})")
    else:
        say(f"email: SMTP on {platform.env['SMTP_HOST']}")
    if not platform.env.get("SMS_API_BASE"):
        url = platform.start_helper("sms", ["services.notifications.sms_double", "--port", "0",
                                            "--directory", str(DATA / "sms")])
        # the gateway checks inbound texts (POST /v1/webhooks/sms) with the auth token, as Twilio signs them
        platform.env.update(SMS_API_BASE=url, SMS_ACCOUNT_SID="AC_demo", SMS_AUTH_TOKEN="demo",
                            SMS_FROM="+13035550000", SMS_WEBHOOK_SECRET="demo")
        say(f"sms: no SMS_API_BASE, so every text is kept as a file in .data/sms/ (provider double on {url}); "
            "inbound texts to POST /v1/webhooks/sms are signed with the auth token 'demo'")
    else:
        say(f"sms: provider at {platform.env['SMS_API_BASE']}")
        if not platform.env.get("SMS_WEBHOOK_SECRET"):
            say("sms: SMS_WEBHOOK_SECRET is not set: POST /v1/webhooks/sms will answer 503")
    platform.env.setdefault("ON_CALL_EMAIL", "on-call@clinic.example.com")
    platform.env.setdefault("QUIET_HOURS", "off")
    if platform.env["QUIET_HOURS"] == "off":
        say("quiet hours are off for the demo: every message goes at once (QUIET_HOURS=on make run keeps them)")


def main() -> int:
    platform = Platform(default_env(), DATA / "logs")
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        if platform.env.get("MONGO_URI"):
            say(f"store: using MONGO_URI={platform.env['MONGO_URI']}")
        else:
            uri = platform.start_store(int(os.environ.get("MONGO_PORT", "27017")), DATA / "mongo.sqlite3")
            say(f"store: mongoeco on {uri} (data in .data/mongo.sqlite3)")
        start_local_outboxes(platform)
        stand_in = not platform.env.get("STRIPE_API_KEY")
        if stand_in:
            base = platform.start_stripe_double(int(os.environ.get("STRIPE_DOUBLE_PORT", "8420")),
                                                DATA / "stripe-double.pickle")
            say(f"payments: no STRIPE_API_KEY, so billing talks to the Stripe stand-in on {base} "
                "(localstripe; test cards such as pm_card_visa; data in .data/stripe-double.pickle)")
        else:
            say("payments: STRIPE_API_KEY is set, so billing talks to Stripe (no stand-in started)")
            if not platform.env.get("STRIPE_WEBHOOK_SECRET"):
                say("payments: STRIPE_WEBHOOK_SECRET is not set: POST /v1/webhooks/stripe will answer 503")
        platform.start_all()
        say("intake, scheduling, billing, notifications and gateway started (logs in .data/logs/)")
        platform.wait_until_ready()
        if stand_in:
            platform.connect_stripe_webhooks()
        patient_id = seed(platform.url)
        say(f"ready: gateway on {platform.url} (API docs at {platform.url}/docs)")
        say(f"demo patient {patient_id}; nurses {', '.join(DEMO_NURSES)}")
        say("try the README's example in another terminal:  source .data/demo.env")
        say("read what the platform sent: ls .data/mail/ (.eml files) and .data/sms/ (.json files)")
        say("Ctrl-C stops everything")
        while not stopping:
            platform.check_alive()
            time.sleep(0.5)
        return 0
    except (ProcessExited, requests.RequestException) as exc:
        say(f"stopping: {exc}")
        return 1
    finally:
        platform.stop()
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())
