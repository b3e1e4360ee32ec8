"""Identifiers: random ones for new things, derived ones for things an event causes.

A handler that creates something derives its id from the event that caused it (``derived_id("inv",
appointment_id)``): a redelivered event then collides on the unique ``_id`` and changes nothing.
"""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1d3c1e-5b7a-4c55-9a43-2f7e1c0b9d21")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def derived_id(prefix: str, *parts: str) -> str:
    return f"{prefix}_{uuid.uuid5(_NAMESPACE, '|'.join(parts)).hex}"
