from chassis.errors import NotFound, NotYet


class ContactUnknown(NotYet):
    """The patient's contact details have not arrived yet (events come in any order): the event waits."""


class PatientUnknown(NotFound):
    code = "patient_not_found"
