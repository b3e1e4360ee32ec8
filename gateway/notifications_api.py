"""Public routes that notifications answers, beyond the foundation's in ``gateway.endpoints``.

Each route is a ``Route`` in ``ROUTES`` (which ``gateway.endpoints.ROUTES`` includes, so OpenAPI, roles,
idempotency, the PHI audit and the authorisation tests cover it) and one ``@api`` handler in
``NotificationsApi``, a mixin of ``gateway.service.GatewayService``, which gives it ``self.notifications`` and the other
services' RPC proxies.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from marshmallow import Schema, fields
from werkzeug.wrappers import Response

from gateway.access import require_patient_access
from gateway.api import ApiRequest, InvalidBody, api
from gateway.routes import Route

UPSTREAM = (502, 503, 504)


class NotificationPreferencesRequest(Schema):
    """Categories switched on (true) or off (false) per channel; those not named keep their setting."""

    email = fields.Dict(keys=fields.String(), values=fields.Raw(),
                        metadata={"example": {"reminders": True, "offers": False}})
    sms = fields.Dict(keys=fields.String(), values=fields.Raw(), metadata={"example": {"reminders": False}})


class NotificationPreferences(Schema):
    patient_id = fields.String(required=True)
    sms_stopped = fields.Boolean(required=True, metadata={"description": "the patient's number texted STOP"})
    email = fields.Dict(keys=fields.String(), values=fields.Boolean(), required=True)
    sms = fields.Dict(keys=fields.String(), values=fields.Boolean(), required=True)


PUT_NOTIFICATION_PREFERENCES = Route(
    "PUT", "/v1/patients/{patient_id}/notification-preferences", "putNotificationPreferences",
    "Switch message categories or single message kinds on or off per channel (safety messages cannot be "
    "switched off)", "patients",
    roles=("patient", "admin"), request_schema=NotificationPreferencesRequest,
    response_schema=NotificationPreferences, errors=(404, *UPSTREAM), phi_resource="notification_preferences")
GET_NOTIFICATION_PREFERENCES = Route(
    "GET", "/v1/patients/{patient_id}/notification-preferences", "getNotificationPreferences",
    "The patient's message preferences", "patients", roles=("patient", "admin"),
    response_schema=NotificationPreferences, errors=(404, *UPSTREAM), phi_resource="notification_preferences")
SMS_WEBHOOK = Route(
    "POST", "/v1/webhooks/sms", "smsWebhook",
    "An inbound text from the SMS provider (STOP, START, HELP), signed the way Twilio signs", "webhooks",
    auth="signature", signature="twilio", body_type="form", errors=(422,))

ROUTES: tuple[Route, ...] = (PUT_NOTIFICATION_PREFERENCES, GET_NOTIFICATION_PREFERENCES, SMS_WEBHOOK)


class NotificationsApi:
    """Handlers of ``ROUTES``: check who may see which record (``gateway.access``), ask notifications."""

    @api(PUT_NOTIFICATION_PREFERENCES)
    def put_notification_preferences(self, request: ApiRequest, patient_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        return self.notifications.set_preferences(patient_id, request.body)

    @api(GET_NOTIFICATION_PREFERENCES)
    def get_notification_preferences(self, request: ApiRequest, patient_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        return self.notifications.get_preferences(patient_id)

    @api(SMS_WEBHOOK)
    def sms_webhook(self, request: ApiRequest) -> Response:
        """Answers TwiML: the reply to text back, if any."""
        missing = [name for name in ("From", "Body") if not isinstance(request.body.get(name), str)]
        if missing:
            raise InvalidBody([{"field": name, "reason": "Missing data for required field."} for name in missing])
        answer = self.notifications.sms_received(request.body["From"], request.body["Body"])
        reply = f"<Message>{escape(answer['reply'])}</Message>" if answer.get("reply") else ""
        return Response(f'<?xml version="1.0" encoding="UTF-8"?><Response>{reply}</Response>',
                        headers={"Content-Type": "text/xml"})
