"""The query parameters every list of the public API accepts (the paging itself is ``chassis.pagination``)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class PageQuerySchema(Schema):
    """``limit`` and ``cursor``; every list's query schema inherits from it."""

    limit = fields.Integer(validate=validate.Range(min=1), metadata={"description": "Page size (capped at 100)"})
    cursor = fields.String(validate=validate.Length(min=1, max=1024),
                           metadata={"description": "The next_cursor of the previous page"})
