"""RPC with a deadline that travels with the request, and domain errors that keep their status across the wire.

``intake = TimedRpcProxy("intake")`` behaves like Nameko's ``RpcProxy`` but:

- every call has a deadline: ``RPC_TIMEOUT_SECONDS`` from now (per proxy ``timeout=`` wins), or sooner if
  the worker making the call is itself answering a caller with an earlier deadline, so a chained call
  (gateway -> scheduling -> intake) gets the remaining time, not a fresh timeout. The deadline bounds the
  publish of the request as well as the wait for its answer (under broker flow control the publish itself
  can block), then ``ServiceTimeout`` (504) is raised. The request carries the deadline in its headers and
  as its message expiration;
- a ``chassis.errors.DomainError`` raised by the remote service is re-raised as ``RemoteDomainError`` with
  its status, code and details, so the gateway maps any service's errors without importing them.

Services expose methods with ``chassis.rpc.rpc`` (not Nameko's): the service's request queue is a quorum
queue, and a worker that picks up a request after its caller's deadline drops it (it answers with an error
nobody waits for any more) instead of doing work whose outcome nobody will read.

A service never proxies to itself (Nameko would deadlock once all its workers wait on themselves).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import eventlet
from kombu import Queue
from nameko.exceptions import UnknownService, deserialize
from nameko.rpc import RPC_QUEUE_TEMPLATE, MethodProxy, Rpc, RpcConsumer, RpcProxy, get_rpc_exchange

from chassis.errors import DOMAIN_ERROR_MARKER, RemoteDomainError, ServiceTimeout, ServiceUnavailable
from chassis.topology import QUORUM

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
#: Context key (and, prefixed ``nameko.``, message header) of the instant, in seconds since the epoch, after
#: which the original caller no longer waits for the answer.
DEADLINE_KEY = "rpc_deadline"
RPC_DELIVERY_LIMIT = 5


class DeadlinePassed(Exception):
    """A request picked up after its caller's deadline: dropped, not executed."""


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


# --- serving ------------------------------------------------------------------------------------------

class QuorumRpcConsumer(RpcConsumer):
    """Nameko's RPC consumer, on a quorum queue ``rpc-<service>``."""

    def setup(self) -> None:
        if self.queue is None:
            service_name = self.container.service_name
            exchange = get_rpc_exchange(self.container.config)
            self.queue = Queue(RPC_QUEUE_TEMPLATE.format(service_name), exchange=exchange,
                               routing_key=f"{service_name}.*", durable=True,
                               queue_arguments={**QUORUM, "x-delivery-limit": RPC_DELIVERY_LIMIT})
            self.queue_consumer.register_provider(self)
            self._registered = True


class DeadlineRpc(Rpc):
    """An RPC entrypoint that drops a request whose caller has stopped waiting."""

    rpc_consumer = QuorumRpcConsumer()

    def handle_message(self, body: Any, message: Any) -> None:
        deadline = (message.headers or {}).get(f"nameko.{DEADLINE_KEY}")
        late = None if deadline is None else time.time() - float(deadline)
        if late is not None and late > 0:
            log.warning("dropping a request for %s: its caller stopped waiting %.1fs ago", self.method_name, late)
            try:
                raise DeadlinePassed(f"{self.method_name}: the caller's deadline passed {late:.1f}s ago")
            except DeadlinePassed:
                self.rpc_consumer.handle_result(message, None, sys.exc_info())  # answers and acknowledges
            return
        super().handle_message(body, message)


rpc = DeadlineRpc.decorator


# --- calling --------------------------------------------------------------------------------------------

class _CallContext:
    """The calling worker's context with the call's own context data (its deadline) for the request headers."""

    def __init__(self, worker_ctx: Any, context_data: dict[str, Any]) -> None:
        self._worker_ctx = worker_ctx
        self.context_data = context_data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._worker_ctx, name)


class TimedMethodProxy:
    def __init__(self, worker_ctx: Any, service_name: str, method_name: str, reply_listener: Any, timeout: float,
                 options: dict[str, Any]) -> None:
        self.worker_ctx = worker_ctx
        self.service_name = service_name
        self.method_name = method_name
        self.reply_listener = reply_listener
        self.timeout = timeout
        self.options = options

    def deadline(self, now: float) -> float:
        """This call's deadline: our own timeout, or the caller's earlier deadline we are working for."""
        inherited = self.worker_ctx.context_data.get(DEADLINE_KEY)
        own = now + self.timeout
        return own if inherited is None else min(own, float(inherited))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        now = time.time()
        deadline = self.deadline(now)
        remaining = deadline - now
        if remaining <= 0:
            raise ServiceTimeout(f"no time left to ask {self.service_name}", service=self.service_name,
                                 retry_after=int(self.timeout))
        context = _CallContext(self.worker_ctx, {**self.worker_ctx.context_data, DEADLINE_KEY: deadline})
        method = MethodProxy(context, self.service_name, self.method_name, self.reply_listener,
                             **{**self.options, "expiration": remaining, "retry": False,
                                "confirm_timeout": remaining, "timeout": remaining})
        # The request is published in a greenthread of its own: under broker flow control the publish (or the
        # pool's clean-up after it) can block until the alarm clears, and the caller must not wait for that.
        publishing = eventlet.spawn(method.call_async, *args, **kwargs)
        try:
            with eventlet.Timeout(remaining):
                try:
                    reply = publishing.wait()
                except UnknownService as exc:
                    raise ServiceUnavailable(f"{self.service_name} is not running",
                                             service=self.service_name) from exc
                except (OSError, TimeoutError) as exc:  # the publish itself timed out (broker blocked or gone)
                    raise eventlet.Timeout() from exc
                body = reply.reply_event.wait()
        except eventlet.Timeout as exc:
            raise ServiceTimeout(f"{self.service_name} did not answer within {remaining:.3g}s",
                                 service=self.service_name, retry_after=max(1, int(self.timeout))) from exc
        return raise_for_reply(body)


class TimedServiceProxy:
    def __init__(self, worker_ctx: Any, service_name: str, reply_listener: Any, timeout: float,
                 options: dict[str, Any]) -> None:
        self._worker_ctx = worker_ctx
        self._service_name = service_name
        self._reply_listener = reply_listener
        self._timeout = timeout
        self._options = options

    def __getattr__(self, name: str) -> TimedMethodProxy:
        return TimedMethodProxy(self._worker_ctx, self._service_name, name, self._reply_listener, self._timeout,
                                self._options)


class TimedRpcProxy(RpcProxy):
    def __init__(self, target_service: str, timeout: float | None = None, **options: Any) -> None:
        self.timeout = timeout
        super().__init__(target_service, **options)

    def setup(self) -> None:
        super().setup()
        if self.timeout is None:
            self.timeout = float(self.container.config.get("RPC_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))
        if self.target_service == self.container.service_name:
            raise ValueError(f"{self.target_service} may not call itself by RPC")

    def get_dependency(self, worker_ctx: Any) -> TimedServiceProxy:
        return TimedServiceProxy(worker_ctx, self.target_service, self.rpc_reply_listener, self.timeout,
                                 dict(self.options))
