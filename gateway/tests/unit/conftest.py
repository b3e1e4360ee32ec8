"""The gateway's modules are tested against the real store: the root ``mongo_uri`` server, a fresh database each."""

from __future__ import annotations

import pytest


@pytest.fixture
def db(mongo_client, database_prefix):
    """A fresh, empty database for each test (dropped by ``database_prefix``)."""
    return mongo_client[database_prefix + "gateway"]
