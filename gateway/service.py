"""The gateway: the public HTTP API of the platform. Each handler asks one service and shapes the answer.

Everything every route needs (authentication, roles, limits, validation, idempotency, audit, errors,
metrics) is done by ``gateway.api`` from the route table in ``gateway.endpoints``; the handlers here only
check who may see which record and call the services by RPC, with a timeout.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict
from typing import Any

import eventlet
from nameko.timer import timer
from werkzeug.wrappers import Response

from chassis.errors import DomainError
from chassis.rpc import TimedRpcProxy
from chassis.service import ServiceBase
from gateway import endpoints as routes
from gateway.access import require_appointment_access, require_patient_access, scoped_filters
from gateway.api import STORE_RETRY_AFTER_SECONDS, ApiRequest, GatewayState, api, to_json
from gateway.billing_api import BillingApi
from gateway.intake_api import IntakeApi
from gateway.notifications_api import NotificationsApi
from gateway.openapi import DOCS_ASSETS, build_spec, docs_asset
from gateway.problems import ProblemError
from gateway.scheduling_api import SchedulingApi

API_TITLE = "At-home ketamine IV therapy platform API"
API_VERSION = "1.0.0"
SERVICES = ("intake", "scheduling", "billing", "notifications")


class AssetNotFound(ProblemError):
    status, code, title = 404, "not_found", "Not Found"


class GatewayService(IntakeApi, SchedulingApi, BillingApi, NotificationsApi, ServiceBase):
    """The foundation's routes are here; each service's own routes are in its mixin (``gateway/<service>_api.py``)."""

    name = "gateway"

    state = GatewayState()
    intake = TimedRpcProxy("intake")
    scheduling = TimedRpcProxy("scheduling")
    billing = TimedRpcProxy("billing")
    notifications = TimedRpcProxy("notifications")

    # --- operations ---------------------------------------------------------------------------------

    @api(routes.HEALTH)
    def health(self, request: ApiRequest) -> Response:
        return self._health_response(self._infrastructure_checks())

    @api(routes.READY)
    def ready(self, request: ApiRequest) -> Response:
        checks = self._infrastructure_checks()
        pool = eventlet.GreenPool(len(SERVICES))
        for service, state in pool.imap(self._service_check, SERVICES):
            checks[service] = state
        return self._health_response(checks)

    @api(routes.METRICS)
    def metrics(self, request: ApiRequest) -> Response:
        return Response(self.state.metrics.exposition(), headers={"Content-Type": self.state.metrics.content_type})

    @api(routes.OPENAPI)
    def openapi(self, request: ApiRequest) -> Response:
        return Response(_openapi_document(), headers={"Content-Type": "application/json"})

    @api(routes.DOCS)
    def docs(self, request: ApiRequest) -> Response:
        return self._asset("docs.html")

    @api(routes.DOCS_ASSET)
    def docs_asset(self, request: ApiRequest, asset: str) -> Response:
        if asset not in DOCS_ASSETS:
            raise AssetNotFound(f"No documentation asset {asset!r}.")
        return self._asset(asset)

    # --- patients -------------------------------------------------------------------------------------

    @api(routes.REGISTER_PATIENT)
    def register_patient(self, request: ApiRequest) -> dict[str, Any]:
        patient = self.intake.register_patient(_as_rpc(request.body))
        request.resource_id = patient["id"]
        return patient

    @api(routes.GET_PATIENT)
    def get_patient(self, request: ApiRequest, patient_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        return self.intake.get_patient(patient_id)

    @api(routes.ASSIGN_CLINICIAN)
    def assign_clinician(self, request: ApiRequest, patient_id: str) -> dict[str, Any]:
        return self.intake.assign_clinician(patient_id, request.body["clinician_id"])

    @api(routes.LIST_PATIENT_NOTIFICATIONS)
    def list_patient_notifications(self, request: ApiRequest, patient_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        return self.notifications.list_messages(patient_id, **_paging(request))

    # --- appointments -------------------------------------------------------------------------------

    @api(routes.BOOK_APPOINTMENT)
    def book_appointment(self, request: ApiRequest) -> dict[str, Any]:
        require_patient_access(request, request.body["patient_id"], self.intake)
        appointment = self.scheduling.book_appointment(_as_rpc(request.body))
        request.resource_id = appointment["id"]
        return appointment

    @api(routes.GET_APPOINTMENT)
    def get_appointment(self, request: ApiRequest, appointment_id: str) -> dict[str, Any]:
        appointment = self.scheduling.get_appointment(appointment_id)
        require_appointment_access(request, appointment, self.intake)
        return appointment

    @api(routes.LIST_APPOINTMENTS)
    def list_appointments(self, request: ApiRequest) -> dict[str, Any]:
        filters = scoped_filters(request, self.intake, patient_id=request.query.get("patient_id"),
                                 nurse_id=request.query.get("nurse_id"))
        return self.scheduling.list_appointments(**filters, **_paging(request))

    # --- billing ------------------------------------------------------------------------------------------

    @api(routes.GET_INVOICE)
    def get_invoice(self, request: ApiRequest, invoice_id: str) -> dict[str, Any]:
        invoice = self.billing.get_invoice(invoice_id)
        require_patient_access(request, invoice["patient_id"], self.intake)
        return invoice

    @api(routes.LIST_INVOICES)
    def list_invoices(self, request: ApiRequest) -> dict[str, Any]:
        filters = scoped_filters(request, self.intake, patient_id=request.query.get("patient_id"),
                                 appointment_id=request.query.get("appointment_id"))
        return self.billing.list_invoices(**filters, **_paging(request))

    # --- nurses ----------------------------------------------------------------------------------------

    @api(routes.LIST_NURSES)
    def list_nurses(self, request: ApiRequest) -> dict[str, Any]:
        return self.scheduling.list_nurses(**_paging(request))

    @api(routes.PUT_NURSE)
    def put_nurse(self, request: ApiRequest, nurse_id: str) -> dict[str, Any]:
        return self.scheduling.add_nurse({"id": nurse_id, **_as_rpc(request.body)})

    # --- audit --------------------------------------------------------------------------------------------

    @api(routes.LIST_AUDIT)
    def list_audit(self, request: ApiRequest) -> dict[str, Any]:
        query = request.query
        page = self.state.audit.query(subject=query.get("subject"), resource=query.get("resource"),
                                          resource_id=query.get("resource_id"), since=query.get("since"),
                                          until=query.get("until"), limit=query.get("limit"),
                                          cursor=query.get("cursor"))
        return {"items": [_audit_entry(entry) for entry in page.items], "next_cursor": page.next_cursor}

    @timer(interval=60)
    def purge_expired_counters(self) -> None:
        """Rate-limit windows and idempotency keys past their time are deleted (keeps the store small)."""
        self.state.rate_limiter.purge_expired()
        self.state.idempotency.purge_expired()

    # --- helpers -----------------------------------------------------------------------------------------

    def _infrastructure_checks(self) -> dict[str, str]:
        return {"broker": self._check(self.state.ping_broker), "store": self._check(self.state.ping_store)}

    def _service_check(self, service: str) -> tuple[str, str]:
        try:
            getattr(self, service).health()
        except DomainError as exc:
            return service, f"unavailable: {exc.detail}"
        return service, "ok"

    @staticmethod
    def _check(probe: Any) -> str:
        try:
            with eventlet.Timeout(3):
                probe()
        except (Exception, eventlet.Timeout) as exc:
            return f"unavailable: {type(exc).__name__}"
        return "ok"

    @staticmethod
    def _health_response(checks: dict[str, str]) -> Response:
        healthy = all(state == "ok" for state in checks.values())
        body = {"status": "ok" if healthy else "unavailable", "checks": checks}
        headers = {"Content-Type": "application/json"}
        if not healthy:
            headers["Retry-After"] = str(STORE_RETRY_AFTER_SECONDS)
        return Response(to_json(body), status=200 if healthy else 503, headers=headers)

    @staticmethod
    def _asset(name: str) -> Response:
        content, content_type = docs_asset(name)
        return Response(content, headers={"Content-Type": content_type, "Cache-Control": "max-age=300"})


@functools.cache
def _openapi_document() -> str:
    """The route table as OpenAPI, built once per process: the table does not change while it runs."""
    return json.dumps(build_spec(routes.ROUTES, API_TITLE, API_VERSION,
                                 description="Errors are application/problem+json. Lists are cursor-paginated."))


def _as_rpc(body: dict[str, Any]) -> dict[str, Any]:
    """The validated body in JSON types (dates as ISO strings) for the RPC call."""
    return json.loads(to_json(body))


def _paging(request: ApiRequest) -> dict[str, Any]:
    return {"cursor": request.query.get("cursor"), "limit": request.query.get("limit")}


def _audit_entry(entry: Any) -> dict[str, Any]:
    return json.loads(to_json(asdict(entry)))
