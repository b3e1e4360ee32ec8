from chassis.errors import Conflict, NotFound


class PatientNotFound(NotFound):
    code = "patient_not_found"


class PatientAlreadyRegistered(Conflict):
    code = "patient_already_registered"


class EmailTaken(Conflict):
    code = "email_taken"

    def __init__(self, detail: str, errors: dict | None = None) -> None:
        super().__init__(detail, errors=errors or {})
