from chassis.errors import Conflict, InvalidInput, NotAllowed, NotFound


class AppointmentNotFound(NotFound):
    code = "appointment_not_found"


class HoldNotFound(NotFound):
    code = "hold_not_found"


class NurseNotFound(NotFound):
    code = "nurse_not_found"


class NurseCannotServePatient(NotAllowed):
    code = "nurse_cannot_serve_patient"


class OutsideServiceArea(NotAllowed):
    """No active nurse with a current licence in the patient's state serves the patient's address."""

    code = "outside_service_area"


class AddressNotLocated(NotAllowed):
    code = "address_not_located"


class PatientNotCleared(NotAllowed):
    code = "patient_not_cleared"


class TimeNotBookable(NotAllowed):
    code = "time_not_bookable"


class VisitNotPriced(NotAllowed):
    """Billing cannot price the visit, so no hold is placed (never a booking whose invoice fails later)."""

    code = "visit_not_priced"


class NoNurseAvailable(Conflict):
    code = "slot_taken"


class ClaimContended(Conflict):
    """Other bookings of the same nurse and day kept winning the race: nothing was claimed, try again."""

    code = "claim_contended"


class InvalidVisitType(InvalidInput):
    code = "invalid_visit_type"


class PatientAlreadyBooked(Conflict):
    code = "patient_has_overlapping_visit"


class AppointmentNotChangeable(Conflict):
    """The appointment is no longer booked (cancelled, under way, over) or has already started."""

    code = "appointment_not_changeable"
