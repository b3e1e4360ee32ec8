from chassis.errors import Conflict, Forbidden, InvalidInput, NotAllowed, NotFound


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


class IllegalVisitStep(Conflict):
    code = "illegal_visit_step"


class VisitStepRefused(NotAllowed):
    """A step or reading that breaks a visit rule (an unknown abort reason, vitals no patient can have, a
    discharge without an escort or post-care instructions)."""

    code = "visit_step_refused"


class NotYourVisit(Forbidden):
    code = "forbidden"


class EntryNotFound(NotFound):
    code = "controlled_substance_entry_not_found"


class SeriesNotFound(NotFound):
    code = "series_not_found"


class SeriesSessionNotBookable(Conflict):
    """One session of several booked at once could not be claimed: none of them was booked (``session`` and
    ``start_at`` name it)."""

    code = "series_session_not_bookable"


class SeriesBookingLapsed(Conflict):
    """A booking of several sessions that was left unfinished too long was released; book again."""

    code = "series_booking_lapsed"
