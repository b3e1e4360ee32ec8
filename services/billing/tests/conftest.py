"""Billing's test fixtures: the Stripe stand-in (localstripe with our layer in front), started on a free port."""

import pytest
import requests
import stripe

from services.billing.stripe_double import running


@pytest.fixture(scope="session")
def stripe_double():
    """The stand-in's base address; one process for the session (tests use their own customers and keys)."""
    with running() as base:
        yield base


@pytest.fixture
def stripe_control(stripe_double):
    """Configure the stand-in (faults, webhook delivery); every fault is cleared after the test."""
    session = requests.Session()
    yield lambda path, body: session.post(f"{stripe_double}/_config/{path}", json=body, timeout=5).raise_for_status()
    session.delete(f"{stripe_double}/_config/double/faults", timeout=5)
    session.post(f"{stripe_double}/_config/double/webhooks", timeout=5,
                 json={"duplicates": 1, "newest_first": False, "retry_seconds": 1})


@pytest.fixture
def stripe_client(stripe_double):
    return stripe.StripeClient("sk_test_double", base_addresses={"api": stripe_double}, max_network_retries=2,
                               http_client=stripe.RequestsClient(timeout=2))
