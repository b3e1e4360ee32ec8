from chassis.errors import NotFound


class InvoiceNotFound(NotFound):
    code = "invoice_not_found"
