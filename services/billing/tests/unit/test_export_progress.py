"""``infusion export`` shows its progress on standard error only: a bar of journal entries read out of the total
billing counts with the first page (on a terminal), then the rows written; standard output holds the export and
nothing else, byte for byte what it holds without the bar."""

import io
from datetime import UTC, date, datetime, timedelta

import pytest

from services.billing import exports, ledger
from services.billing.commands import ExportProgress, PlainBar, export_pages, write_export

DAY = date(2026, 11, 24)


class Billing:
    """Billing's ``export_page`` over 250 deposits, 100 a page, as the RPC answers it."""

    def __init__(self) -> None:
        start = datetime(2026, 11, 24, tzinfo=UTC)
        self.entries = [ledger.deposit_received(f"pi_{n}", f"hld_{n}", "pat_1", 15000, 465, "usd",
                                                start + timedelta(minutes=n), f"ch_{n}") for n in range(250)]

    def export_page(self, kind, date_from, date_to, cursor=None, limit=100):
        first = int(cursor or 0)
        page = self.entries[first:first + limit]
        answer = {"rows": list(exports.rows(kind, page)), "entries": len(page),
                  "next_cursor": str(first + limit) if first + limit < len(self.entries) else None}
        return answer if cursor else {**answer, "total_entries": len(self.entries)}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def exported(progress_stream=None, **progress) -> str:
    out = io.StringIO()
    shown = ExportProgress(progress_stream, "payments", **progress) if progress_stream is not None else None
    rows = export_pages(Billing(), "payments", DAY, DAY, progress=shown)
    assert write_export(rows, "payments", "csv", out, progress=shown) == 250
    return out.getvalue()


def plain_bar(stream, total, label):
    return PlainBar(stream, total, label, "entries")


@pytest.mark.parametrize("make_bar", [plain_bar, None], ids=["plain bar", "tqdm if installed"])
def test_on_a_terminal_a_bar_runs_to_the_total_and_the_export_is_unchanged(make_bar):
    terminal = Terminal()

    output = exported(terminal, **({"make_bar": make_bar} if make_bar else {}))

    assert output == exported()
    assert output.count("\n") == 251 and output.startswith("posted_at,payment_intent_id")
    shown = terminal.getvalue()
    assert "250/250" in shown and "100%" in shown
    assert shown.endswith("payments: 250 rows written\n")


def test_when_standard_error_is_not_a_terminal_only_the_rows_written_are_said():
    piped = io.StringIO()

    output = exported(piped)

    assert output == exported()
    assert piped.getvalue() == "payments: 250 rows written\n"


def test_the_plain_bar_without_a_total_counts():
    stream = io.StringIO()
    bar = PlainBar(stream, None, "ledger", "entries")
    bar.update(1200)
    bar.close()
    assert "ledger: 1,200 entries" in stream.getvalue() and "%" not in stream.getvalue()
