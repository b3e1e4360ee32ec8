"""Versioned configuration: the version in force is picked by date, and bad files stop the service."""

from datetime import UTC, datetime

import pytest
from marshmallow import Schema, fields

from chassis.config import ConfigurationInvalid, VersionedConfig


class FeeSchema(Schema):
    late_cancellation_cents = fields.Integer(required=True, strict=True)


DOCUMENT = {"versions": [
    {"version": "v2", "effective_from": "2027-01-01T00:00:00Z", "late_cancellation_cents": 7500},
    {"version": "v1", "effective_from": "2026-01-01T00:00:00Z", "late_cancellation_cents": 5000},
]}


@pytest.mark.parametrize(("moment", "expected_version", "fee"), [
    (datetime(2026, 6, 1, tzinfo=UTC), "v1", 5000),
    (datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), "v1", 5000),
    (datetime(2027, 1, 1, tzinfo=UTC), "v2", 7500),
])
def test_the_version_in_force_at_a_moment_is_the_latest_already_effective(moment, expected_version, fee):
    config = VersionedConfig.from_document("fees", DOCUMENT, FeeSchema())
    chosen = config.effective_at(moment)
    assert (chosen.version, chosen["late_cancellation_cents"]) == (expected_version, fee)


def test_nothing_is_in_force_before_the_first_version():
    config = VersionedConfig.from_document("fees", DOCUMENT, FeeSchema())
    with pytest.raises(ConfigurationInvalid, match="no version in force"):
        config.effective_at(datetime(2025, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("document", [
    None,
    {"versions": []},
    {"versions": [{"version": "v1", "late_cancellation_cents": 5000}]},  # no effective_from
    {"versions": [{"version": "v1", "effective_from": "2026-01-01T00:00:00", "late_cancellation_cents": 5}]},  # naive
    {"versions": [{"version": "v1", "effective_from": "2026-01-01T00:00:00Z", "late_cancellation_cents": "5"}]},
    {"versions": [{"version": "v1", "effective_from": "2026-01-01T00:00:00Z", "late_cancellation_cents": 5},
                  {"version": "v1", "effective_from": "2026-02-01T00:00:00Z", "late_cancellation_cents": 6}]},
])
def test_a_malformed_configuration_is_refused_at_load_time(document):
    with pytest.raises(ConfigurationInvalid):
        VersionedConfig.from_document("fees", document, FeeSchema())
