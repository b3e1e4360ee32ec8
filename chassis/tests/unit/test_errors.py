"""Domain errors keep their HTTP meaning when they cross RPC."""

from nameko.exceptions import serialize

from chassis.errors import NotFound, RemoteDomainError
from chassis.rpc import raise_for_reply


class PatientNotFound(NotFound):
    code = "patient_not_found"


def test_a_domain_error_raised_by_a_service_reaches_the_caller_with_its_status_code_and_details():
    reply = {"result": None, "error": serialize(PatientNotFound("no patient p1", patient_id="p1"))}
    try:
        raise_for_reply(reply)
    except RemoteDomainError as error:
        assert (error.status, error.code, error.detail) == (404, "patient_not_found", "no patient p1")
        assert error.details == {"patient_id": "p1"}
        assert error.exc_type == "PatientNotFound"
    else:
        raise AssertionError("no error raised")


def test_a_successful_reply_gives_its_result():
    assert raise_for_reply({"result": {"ok": True}, "error": None}) == {"ok": True}
