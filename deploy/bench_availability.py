"""How fast ``GET /v1/availability`` answers with a realistic roster: 100 nurses around Denver, 14 days, two
visits booked per nurse and day, through the real processes (gateway -> scheduling -> intake) on loopback.

    .venv/bin/python deploy/bench_availability.py      # BENCH_NURSES, BENCH_DAYS, BENCH_SAMPLES

Starts a throwaway store (in memory) and a fresh RabbitMQ vhost like ``make bench``; adds the nurses through
the API; writes the booked visits straight into scheduling's store (thousands of bookings over HTTP would
measure the store's write speed, not the search), shaped exactly as a booking stores them; then asks for
availability over the 14 days, one client at a time, and prints p50/p95 (also in ``.data/bench_availability.json``).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pymongo
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.bench import MANAGEMENT, SECRET, bearer, free_port, fresh_vhost, percentile  # noqa: E402
from deploy.processes import ROOT, Platform, default_env  # noqa: E402
from deploy.run import demo_nurse  # noqa: E402
from services.intake.walkthrough import VISIT_DETAILS, clear_over_http  # noqa: E402
from services.scheduling.domain import revision_key, visit_keys  # noqa: E402
from services.scheduling.service import CALENDAR  # noqa: E402

NURSES = int(os.environ.get("BENCH_NURSES", "100"))
DAYS = int(os.environ.get("BENCH_DAYS", "14"))
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "30"))
DENVER = ZoneInfo("America/Denver")
CENTRE = (39.7491, -104.9946)


def near_denver(rng: random.Random) -> tuple[float, float]:
    return CENTRE[0] + rng.uniform(-0.25, 0.25), CENTRE[1] + rng.uniform(-0.3, 0.3)  # within about 20 miles


def booked_visits(nurse_ids: list[str], first_day: datetime, rng: random.Random) -> list[dict]:
    """Two two-hour visits per nurse and day (09:00 and 13:00 Denver time), stored as a booking stores them."""
    calendar = CALENDAR.effective_at()
    visits = []
    for nurse_id in nurse_ids:
        for day_number in range(DAYS):
            day = first_day.date() + timedelta(days=day_number)
            for revision, hour in enumerate((9, 13), start=1):
                start = datetime(day.year, day.month, day.day, hour, tzinfo=DENVER).astimezone(UTC)
                end = start + timedelta(hours=2)
                patient_id = f"pat_bench_{rng.getrandbits(48):012x}"
                visits.append({
                    "_id": f"apt_bench_{rng.getrandbits(64):016x}", "patient_id": patient_id, "nurse_id": nurse_id,
                    "visit_type": "iv-mood", "status": "booked", "booked_at": datetime.now(UTC),
                    "start_at": start, "end_at": end, "time_zone": "America/Denver",
                    "local_start": start.astimezone(DENVER).isoformat(), "calendar_version": calendar.version,
                    "place": list(near_denver(rng)), "postal_code": "80202", "work_day": str(day),
                    "slot_keys": visit_keys(nurse_id, patient_id, start, end),
                    "revision_keys": [revision_key(nurse_id, day, revision)], "outbox": []})
    return visits


def main() -> int:
    rng = random.Random(7)
    vhost, amqp_uri = fresh_vhost("bench_av_")
    env = {**default_env(), "AMQP_URI": amqp_uri,
           "GATEWAY_ADDRESS": f"127.0.0.1:{free_port()}", "JWT_SECRET": SECRET, "DATABASE_PREFIX": "bench_av_",
           "RATE_LIMIT_DEFAULT": "100000/60", "LOG_LEVEL": "WARNING"}
    platform = Platform(env, Path(tempfile.mkdtemp(prefix="bench-availability-logs-")))
    try:
        mongo_uri = platform.start_store(free_port(), None)
        platform.start_all()
        platform.wait_until_ready()
        url, admin = platform.url, bearer("admin", "bench-admin")
        nurse_ids = [f"nur_bench_{n:03d}" for n in range(NURSES)]
        for nurse_id in nurse_ids:
            requests.put(f"{url}/v1/nurses/{nurse_id}", headers=admin, timeout=30,
                         json=demo_nurse(nurse_id, ["CO"], near_denver(rng), "America/Denver", 50)).raise_for_status()
        first_day = datetime.now(DENVER) + timedelta(days=2)
        visits = booked_visits(nurse_ids, first_day, rng)
        started = time.perf_counter()
        with pymongo.MongoClient(mongo_uri, tz_aware=True) as client:
            appointments = client["bench_av_scheduling"].appointments
            for batch in range(0, len(visits), 500):
                appointments.insert_many(visits[batch:batch + 500])
        print(f"{NURSES} nurses, {len(visits)} booked visits over {DAYS} days "
              f"(stored in {time.perf_counter() - started:.0f} s)", flush=True)
        patient = requests.post(f"{url}/v1/patients", timeout=30, json={
            "first_name": "Bench", "last_name": "Patient", "email": "availability@example.com",
            "phone": "+13035550100", "date_of_birth": "1980-01-01", "time_zone": "America/Denver",
            "address": {"line1": "1 Main St", "city": "Denver", "state": "CO", "postal_code": "80202"},
            **VISIT_DETAILS}).json()["id"]
        clear_over_http(url, patient, bearer("patient", patient), admin)  # screened, consented, approved
        query = {"patient_id": patient, "visit_type": "iv-mood", "from": str(first_day.date()),
                 "to": str(first_day.date() + timedelta(days=DAYS - 1))}
        latencies, slots = [], 0
        for _ in range(SAMPLES):
            began = time.perf_counter()
            answer = requests.get(f"{url}/v1/availability", params=query, headers=bearer("patient", patient),
                                  timeout=60)
            latencies.append(time.perf_counter() - began)
            answer.raise_for_status()
            slots = len(answer.json()["slots"])
        result = {"nurses": NURSES, "days": DAYS, "booked_visits": len(visits), "samples": SAMPLES,
                  "free_starts_answered": slots, "p50_ms": round(1000 * statistics.median(latencies), 1),
                  "p95_ms": round(1000 * percentile(latencies, 0.95), 1), "max_ms": round(1000 * max(latencies), 1),
                  "machine": {"cpus": os.cpu_count()}}
        print(f"GET /v1/availability over {DAYS} days: {slots} start times; p50 {result['p50_ms']} ms, "
              f"p95 {result['p95_ms']} ms, max {result['max_ms']} ms ({SAMPLES} requests, one client)", flush=True)
        (ROOT / ".data").mkdir(exist_ok=True)
        (ROOT / ".data" / "bench_availability.json").write_text(json.dumps(result, indent=2))
    finally:
        platform.stop()
        requests.delete(f"{MANAGEMENT}/api/vhosts/{vhost}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
