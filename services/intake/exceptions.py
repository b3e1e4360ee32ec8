from chassis.errors import Conflict, NotFound


class PatientNotFound(NotFound):
    code = "patient_not_found"


class PatientAlreadyRegistered(Conflict):
    code = "patient_already_registered"
