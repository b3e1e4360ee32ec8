"""``make bench``: speed and memory of the platform, through the real processes on loopback.

Starts a throwaway store (in memory) and a fresh RabbitMQ vhost, the four services and the gateway, then
measures over HTTP: patient registrations and bookings per second (one client, then several), request
latency percentiles, the lag from a booking's 201 to its invoice being visible (event -> billing), and the
resident memory of each process afterwards. Results are printed and written to ``.data/bench.json``.
Sizes stay small on purpose: mongoeco's writes slow down as collections grow.
"""

from __future__ import annotations

import json
import os
import random
import socket
import statistics
import string
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.processes import ROOT, Platform, default_env  # noqa: E402
from deploy.run import demo_nurse  # noqa: E402
from gateway.auth import AuthSettings, mint_token  # noqa: E402
from services.intake.walkthrough import VISIT_DETAILS, clear_over_http  # noqa: E402

MANAGEMENT = os.environ.get("RABBIT_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")
SECRET = "benchmark-secret-0123456789abcdef0123"
BOOKINGS = int(os.environ.get("BENCH_BOOKINGS", "60"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "4"))
NURSES = ("nur_b1", "nur_b2", "nur_b3")
VISIT_HOURS_UTC = (15, 18, 21)  # 08:00, 11:00, 14:00 in Denver (MST)
DENVER = (39.7491, -104.9946)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bearer(role: str, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(AuthSettings(secret=SECRET), subject, role, ttl_seconds=3600)}"}


def patient(n: int) -> dict:
    return {"first_name": f"Bench{n}", "last_name": "Patient", "email": f"bench{n}@example.com",
            "phone": "+13035550100", "date_of_birth": "1980-01-01", "time_zone": "America/Denver",
            "address": {"line1": "1 Main St", "city": "Denver", "state": "CO", "postal_code": "80202"},
            **VISIT_DETAILS}


def slots(count: int) -> list[str]:
    first_day = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    found = []
    day = 0
    while len(found) < count:
        for hour in VISIT_HOURS_UTC:
            for _ in NURSES:
                found.append((first_day + timedelta(days=day)).replace(hour=hour).isoformat())
        day += 1
    return found[:count]


def timed(call) -> tuple[float, requests.Response]:
    started = time.perf_counter()
    response = call()
    return time.perf_counter() - started, response


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(name: str, latencies: list[float], elapsed: float) -> dict:
    result = {"operation": name, "requests": len(latencies), "per_second": round(len(latencies) / elapsed, 1),
              "p50_ms": round(1000 * statistics.median(latencies), 1),
              "p95_ms": round(1000 * percentile(latencies, 0.95), 1),
              "max_ms": round(1000 * max(latencies), 1)}
    print(f"{name:<38} {result['requests']:>5} req  {result['per_second']:>7} /s  p50 {result['p50_ms']:>7} ms  "
          f"p95 {result['p95_ms']:>7} ms  max {result['max_ms']:>7} ms", flush=True)
    return result


def run_batch(name: str, calls: list, workers: int) -> tuple[dict, list[requests.Response]]:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(timed, calls))
    elapsed = time.perf_counter() - started
    failed = [r for _, r in outcomes if r.status_code >= 300]
    if failed:
        raise SystemExit(f"{name}: {len(failed)} failed, first: {failed[0].status_code} {failed[0].text}")
    return summary(name, [latency for latency, _ in outcomes], elapsed), [r for _, r in outcomes]


def fresh_vhost(prefix: str) -> tuple[str, str]:
    """A new RabbitMQ vhost for one run (through the management API) and its AMQP URI."""
    vhost = prefix + "".join(random.choices(string.ascii_lowercase, k=8))
    requests.put(f"{MANAGEMENT}/api/vhosts/{vhost}").raise_for_status()
    requests.put(f"{MANAGEMENT}/api/permissions/{vhost}/guest",
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    return vhost, f"pyamqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"


def main() -> int:
    vhost, amqp_uri = fresh_vhost("bench_")
    env = {**default_env(), "AMQP_URI": amqp_uri,
           "GATEWAY_ADDRESS": f"127.0.0.1:{free_port()}", "JWT_SECRET": SECRET, "DATABASE_PREFIX": "bench_",
           "RATE_LIMIT_DEFAULT": "100000/60", "RATE_LIMIT_REGISTER": "100000/60", "RATE_LIMIT_BOOK": "100000/60",
           "LOG_LEVEL": "WARNING"}
    platform = Platform(env, Path(tempfile.mkdtemp(prefix="bench-logs-")))
    results: dict = {"machine": {"cpus": os.cpu_count()}, "bookings": BOOKINGS, "concurrency": CONCURRENCY}
    try:
        platform.start_store(free_port(), None)
        platform.start_all()
        platform.wait_until_ready()
        url, admin = platform.url, bearer("admin", "bench-admin")
        for nurse in NURSES:
            requests.put(f"{url}/v1/nurses/{nurse}", headers=admin,
                         json=demo_nurse(nurse, ["CO"], DENVER, "America/Denver", 30)).raise_for_status()
        print(f"platform up; {BOOKINGS} patients and bookings, then concurrency {CONCURRENCY}", flush=True)

        half = BOOKINGS // 2
        times = slots(BOOKINGS)
        rows = []
        row, registered = run_batch("register patient (1 client)",
                                    [lambda n=n: requests.post(f"{url}/v1/patients", json=patient(n))
                                     for n in range(half)], 1)
        rows.append(row)
        row, more = run_batch(f"register patient ({CONCURRENCY} clients)",
                              [lambda n=n: requests.post(f"{url}/v1/patients", json=patient(n))
                               for n in range(half, BOOKINGS)], CONCURRENCY)
        rows.append(row)
        patient_ids = [r.json()["id"] for r in registered + more]

        def clear(patient_id: str):
            """Three screenings, the consent document read and signed, the review found and approved: 7 requests."""
            def screen_consent_and_approve() -> requests.Response:
                answered = requests.Response()
                answered.status_code = 200
                clear_over_http(url, patient_id, bearer("patient", patient_id), admin)  # raises if refused
                return answered
            return screen_consent_and_approve

        row, _ = run_batch(f"clear patient, 7 requests ({CONCURRENCY} clients)",
                           [clear(patient_id) for patient_id in patient_ids], CONCURRENCY)
        rows.append(row)

        def book(i: int):
            return lambda: requests.post(f"{url}/v1/appointments", headers=bearer("patient", patient_ids[i]),
                                         json={"patient_id": patient_ids[i], "visit_type": "iv-mood",
                                               "start_at": times[i]})

        row, first = run_batch("book appointment (1 client)", [book(i) for i in range(half)], 1)
        rows.append(row)
        row, second = run_batch(f"book appointment ({CONCURRENCY} clients)",
                                [book(i) for i in range(half, BOOKINGS)], CONCURRENCY)
        rows.append(row)
        finance = bearer("finance", "bench-finance")
        row, _ = run_batch("read appointment (1 client)",
                           [lambda a=a: requests.get(f"{url}/v1/appointments/{a.json()['id']}", headers=admin)
                            for a in first], 1)
        rows.append(row)

        lags = []
        for n in range(10):
            new_patient = requests.post(f"{url}/v1/patients", json=patient(10_000 + n)).json()["id"]
            clear_over_http(url, new_patient, bearer("patient", new_patient), admin)
            start = (datetime.now(UTC) + timedelta(days=40 + n)).replace(hour=15, minute=0, second=0,
                                                                         microsecond=0).isoformat()
            booked = requests.post(f"{url}/v1/appointments", headers=bearer("patient", new_patient),
                                   json={"patient_id": new_patient, "visit_type": "iv-mood", "start_at": start})
            booked_at = time.perf_counter()
            appointment_id = booked.json()["id"]
            while not requests.get(f"{url}/v1/invoices", headers=finance,
                                   params={"appointment_id": appointment_id}).json()["items"]:
                time.sleep(0.005)
            lags.append(time.perf_counter() - booked_at)
        results["booking_to_invoice_ms"] = {"p50": round(1000 * statistics.median(lags), 1),
                                            "max": round(1000 * max(lags), 1), "samples": len(lags)}
        print(f"{'booking 201 -> invoice visible':<38} {len(lags):>5} samples  p50 "
              f"{results['booking_to_invoice_ms']['p50']} ms  max {results['booking_to_invoice_ms']['max']} ms")
        results["operations"] = rows
        results["rss_mb"] = {name: round(size, 1) for name, size in platform.rss_megabytes().items()}
        print("resident memory (MB): " + ", ".join(f"{k} {v}" for k, v in results["rss_mb"].items()))
    finally:
        platform.stop()
        requests.delete(f"{MANAGEMENT}/api/vhosts/{vhost}")
    (ROOT / ".data").mkdir(exist_ok=True)
    (ROOT / ".data" / "bench.json").write_text(json.dumps(results, indent=2))
    print("written to .data/bench.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
