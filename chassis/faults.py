"""Faults injected on purpose: how the chaos harness and the fault tests reach inside a real process.

A rule is ``<point>:<target>:<action>[@<probability>]``, several separated by commas, from the ``FAULTS``
setting (a test's container config) or the ``INFUSION_FAULTS`` environment variable (a ``nameko run``
process the chaos harness starts). Production sets neither, and then nothing here ever fires.

- ``after_insert:appointments:kill@0.2``: after a document was inserted into ``appointments`` (and its
  events with it), the process kills itself with SIGKILL one time in five: the write is committed, the
  caller never hears back, and the broker redelivers the unacknowledged RPC request to another process.
- ``after_insert:appointments:sleep=3``: the same point, but the worker sleeps 3 s first (the caller's
  RPC deadline passes while the work is already done).
"""

from __future__ import annotations

import logging
import os
import random
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import eventlet

log = logging.getLogger(__name__)

ENVIRONMENT_VARIABLE = "INFUSION_FAULTS"


@dataclass(frozen=True)
class FaultRule:
    point: str
    target: str
    action: str
    seconds: float = 0.0
    probability: float = 1.0

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        try:
            point, target, action = text.strip().split(":")
        except ValueError:
            raise ValueError(f"fault rule {text!r}: expected point:target:action[@probability]") from None
        action, _, probability = action.partition("@")
        action, _, seconds = action.partition("=")
        if action not in ("kill", "sleep"):
            raise ValueError(f"fault rule {text!r}: the action is kill or sleep=<seconds>")
        return cls(point, target, action, float(seconds or 0), float(probability or 1))


class Faults:
    """The rules in force in this process, asked at each fault point."""

    def __init__(self, rules: list[FaultRule]) -> None:
        self.rules = rules

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Faults:
        text = config.get("FAULTS") or os.environ.get(ENVIRONMENT_VARIABLE) or ""
        return cls([FaultRule.parse(rule) for rule in str(text).split(",") if rule.strip()])

    def reached(self, point: str, target: str) -> None:
        for rule in self.rules:
            if rule.point != point or rule.target != target or random.random() >= rule.probability:
                continue
            if rule.action == "sleep":
                log.warning("fault injected: sleeping %gs %s %s", rule.seconds, point, target)
                eventlet.sleep(rule.seconds)
            else:
                log.warning("fault injected: killing this process %s %s", point, target)
                os.kill(os.getpid(), signal.SIGKILL)
