"""Public routes that scheduling answers, beyond the foundation's in ``gateway.endpoints``.

Each route is a ``Route`` in ``ROUTES`` (which ``gateway.endpoints.ROUTES`` includes, so OpenAPI, roles,
idempotency, the PHI audit and the authorisation tests cover it) and one ``@api`` handler in
``SchedulingApi``, a mixin of ``gateway.service.GatewayService``, which gives it ``self.scheduling`` and the other
services' RPC proxies.
"""

from __future__ import annotations

from gateway.routes import Route

ROUTES: tuple[Route, ...] = ()


class SchedulingApi:
    """Handlers of ``ROUTES``: check who may see which record (``gateway.access``), ask scheduling."""
