"""The event envelope: producers can only emit registered, valid payloads; consumers refuse the rest."""

import pytest
from marshmallow import Schema, fields

from chassis.events import EventInvalid, event_schema, make_event, read_event


@event_schema("visit.rated", version=1)
class VisitRated(Schema):
    visit_id = fields.String(required=True)
    stars = fields.Integer(required=True)


class VisitRatedReader(Schema):
    visit_id = fields.String(required=True)


def test_an_envelope_carries_identity_type_version_time_correlation_and_payload():
    event = make_event("scheduling", "visit.rated", {"visit_id": "v1", "stars": 5}, correlation_id="req-1")
    assert event["event_id"].startswith("evt_")
    assert event["occurred_at"].endswith("Z")
    assert (event["type"], event["version"], event["producer"]) == ("visit.rated", 1, "scheduling")
    assert event["correlation_id"] == "req-1"
    assert event["payload"] == {"visit_id": "v1", "stars": 5}


def test_a_producer_cannot_emit_an_unregistered_type_or_an_invalid_payload():
    with pytest.raises(EventInvalid, match="no schema"):
        make_event("scheduling", "visit.unheard_of", {}, None)
    with pytest.raises(EventInvalid, match="payload invalid"):
        make_event("scheduling", "visit.rated", {"visit_id": "v1"}, None)


def test_a_consumer_reads_only_the_fields_it_needs_and_ignores_the_rest():
    event = read_event(make_event("scheduling", "visit.rated", {"visit_id": "v1", "stars": 5}, None),
                       {1: VisitRatedReader})
    assert event.payload == {"visit_id": "v1"}


@pytest.mark.parametrize("mutate", [
    lambda e: e.pop("event_id"),
    lambda e: e.update(type="NOT A TYPE"),
    lambda e: e.update(version=2),          # a version this consumer does not read
    lambda e: e.update(occurred_at="yesterday"),
    lambda e: e["payload"].pop("visit_id"),
])
def test_a_consumer_refuses_a_malformed_envelope_or_an_unknown_version(mutate):
    event = make_event("scheduling", "visit.rated", {"visit_id": "v1", "stars": 5}, None)
    mutate(event)
    with pytest.raises(EventInvalid):
        read_event(event, {1: VisitRatedReader})
