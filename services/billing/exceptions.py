from chassis.errors import Conflict, DomainError, Forbidden, NotAllowed, NotFound, Unavailable


class InvoiceNotFound(NotFound):
    code = "invoice_not_found"


class HoldNotQuoted(NotFound):
    """Billing has no quote for this hold: unknown, or not placed through scheduling's quote."""

    code = "hold_not_found"


class HoldLapsed(Conflict):
    code = "hold_lapsed"


class NothingToPay(NotAllowed):
    code = "nothing_to_pay"


class CardDeclined(DomainError):
    status = 402
    code = "card_declined"


class PaymentsUnavailable(Unavailable):
    code = "payments_unavailable"


class PatientIneligible(NotAllowed):
    """A clinician found the patient ineligible: no package is sold to them."""

    code = "patient_declined"


class RefundExceedsPayment(NotAllowed):
    code = "refund_exceeds_payment"


class WaiverNotAvailable(NotAllowed):
    code = "waiver_not_available"


class NotYourHold(Forbidden):
    code = "not_your_hold"


class SuperbillUnavailable(Unavailable):
    code = "superbill_unavailable"
