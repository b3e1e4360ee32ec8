"""The one description of the broker's topology (services/topology.yml) lists exactly the event handlers the
services declare with ``@subscribe``: every service declares it whole at every start, so a handler missing
from it would have no queue until its own first start, and events published before then would be lost."""

from __future__ import annotations

import inspect
from pathlib import Path

from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR

from chassis.subscriber import EventSubscriber
from chassis.topology import Handler, load_handlers
from deploy.processes import SERVICE_CLASSES

ROOT = Path(__file__).resolve().parent.parent


def declared_handlers() -> set[Handler]:
    found = set()
    for service, class_name in SERVICE_CLASSES.items():
        module = __import__(f"services.{service}.service", fromlist=[class_name])
        service_class = getattr(module, class_name)
        for method_name, method in inspect.getmembers(service_class, inspect.isfunction):
            for entrypoint in getattr(method, ENTRYPOINT_EXTENSIONS_ATTR, ()):
                if isinstance(entrypoint, EventSubscriber):
                    source, event_type = entrypoint.source_service, entrypoint.event_type
                    found.add(Handler(source, event_type, service_class.name, method_name))
    return found


def test_the_topology_description_lists_every_event_handler_and_nothing_else():
    described = set(load_handlers(ROOT / "services" / "topology.yml"))
    declared = declared_handlers()
    assert sorted(declared - described, key=str) == [], "handlers missing from services/topology.yml"
    assert sorted(described - declared, key=str) == [], "services/topology.yml lists handlers no service has"
