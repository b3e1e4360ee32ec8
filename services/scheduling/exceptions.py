from chassis.errors import Conflict, InvalidInput, NotAllowed, NotFound


class AppointmentNotFound(NotFound):
    code = "appointment_not_found"


class NurseNotFound(NotFound):
    code = "nurse_not_found"


class NurseCannotServePatient(NotAllowed):
    code = "nurse_cannot_serve_patient"


class PatientNotCleared(NotAllowed):
    code = "patient_not_cleared"


class TimeNotBookable(NotAllowed):
    code = "time_not_bookable"


class NoNurseAvailable(Conflict):
    code = "slot_taken"


class InvalidVisitType(InvalidInput):
    code = "invalid_visit_type"


class PatientAlreadyBooked(Conflict):
    code = "patient_has_overlapping_visit"
