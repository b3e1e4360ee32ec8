from chassis.errors import NotYet


class ContactUnknown(NotYet):
    """The patient's contact details have not arrived yet (events come in any order): the event waits."""

