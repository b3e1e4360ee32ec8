"""RPC proxies with a timeout on every call, and domain errors that keep their status across the wire.

``intake = TimedRpcProxy("intake")`` behaves like Nameko's ``RpcProxy`` but:

- every call waits at most ``RPC_TIMEOUT_SECONDS`` (per proxy ``timeout=`` wins) and raises
  ``ServiceTimeout``; the request message carries the same expiration, so a late service does not act on a
  question nobody waits for any more;
- a ``chassis.errors.DomainError`` raised by the remote service is re-raised as ``RemoteDomainError`` with
  its status, code and details, so the gateway maps any service's errors without importing them.

A service never proxies to itself (Nameko would deadlock once all its workers wait on themselves).
"""

from __future__ import annotations

from typing import Any

import eventlet
from nameko.exceptions import UnknownService, deserialize
from nameko.rpc import MethodProxy, RpcProxy

from chassis.errors import DOMAIN_ERROR_MARKER, RemoteDomainError, ServiceTimeout, ServiceUnavailable

DEFAULT_TIMEOUT_SECONDS = 10.0


def raise_for_reply(body: dict[str, Any]) -> Any:
    """The result of an RPC reply body, or the error it carries raised as the right exception."""
    error = body.get("error")
    if not error:
        return body["result"]
    args = error.get("exc_args") or []
    if len(args) == 2 and isinstance(args[1], dict) and args[1].get(DOMAIN_ERROR_MARKER):
        info = args[1]
        raise RemoteDomainError(error["exc_type"], int(info["status"]), info["code"], str(args[0]),
                                info.get("details") or {})
    raise deserialize(error)


class TimedMethodProxy:
    def __init__(self, method: MethodProxy, service_name: str, timeout: float) -> None:
        self.method = method
        self.service_name = service_name
        self.timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            reply = self.method.call_async(*args, **kwargs)
        except UnknownService as exc:
            raise ServiceUnavailable(f"{self.service_name} is not running", service=self.service_name) from exc
        try:
            with eventlet.Timeout(self.timeout):
                body = reply.reply_event.wait()
        except eventlet.Timeout as exc:
            raise ServiceTimeout(f"{self.service_name} did not answer within {self.timeout:g}s",
                                 service=self.service_name, retry_after=int(self.timeout)) from exc
        return raise_for_reply(body)


class TimedServiceProxy:
    def __init__(self, proxy: Any, service_name: str, timeout: float) -> None:
        self._proxy = proxy
        self._service_name = service_name
        self._timeout = timeout

    def __getattr__(self, name: str) -> TimedMethodProxy:
        return TimedMethodProxy(getattr(self._proxy, name), self._service_name, self._timeout)


class TimedRpcProxy(RpcProxy):
    def __init__(self, target_service: str, timeout: float | None = None, **options: Any) -> None:
        self.timeout = timeout
        super().__init__(target_service, **options)

    def setup(self) -> None:
        super().setup()
        if self.timeout is None:
            self.timeout = float(self.container.config.get("RPC_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))
        self.options.setdefault("expiration", self.timeout)
        if self.target_service == self.container.service_name:
            raise ValueError(f"{self.target_service} may not call itself by RPC")

    def get_dependency(self, worker_ctx: Any) -> TimedServiceProxy:
        return TimedServiceProxy(super().get_dependency(worker_ctx), self.target_service, self.timeout)
