from chassis.errors import NotFound


class ContactUnknown(NotFound):
    """The patient's contact details have not arrived yet (events come in any order): retried."""

    code = "contact_unknown"
