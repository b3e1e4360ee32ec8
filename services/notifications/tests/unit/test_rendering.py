"""What a patient reads: times in their own time zone, amounts in dollars, and never a health word in an
SMS or a subject line (HIPAA "minimum necessary": a lock screen or a shared inbox must not tell anyone
what the visit is for). SMS go only to patients who agreed to receive texts.
"""

from datetime import datetime

import pytest

from services.notifications.dependencies import load_message_catalogue
from services.notifications.domain import local_date, local_time, money
from services.notifications.rendering import HealthDetailInText, assert_no_health_words

REAL_CATALOGUE = load_message_catalogue().effective_at()
FORBIDDEN = REAL_CATALOGUE["forbidden_words"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(("moment", "time_zone", "reads"), [
    ("2026-12-15T15:00:00Z", "America/New_York", "Tuesday, December 15 at 10:00 AM EST"),
    ("2026-07-14T14:00:00Z", "America/New_York", "Tuesday, July 14 at 10:00 AM EDT"),
    # the days the clocks change: the same 10:00 local is a different UTC hour either side
    ("2026-10-31T14:00:00Z", "America/New_York", "Saturday, October 31 at 10:00 AM EDT"),
    ("2026-11-01T15:00:00Z", "America/New_York", "Sunday, November 1 at 10:00 AM EST"),
    ("2027-03-13T15:00:00Z", "America/New_York", "Saturday, March 13 at 10:00 AM EST"),
    ("2027-03-14T14:00:00Z", "America/New_York", "Sunday, March 14 at 10:00 AM EDT"),
    ("2026-11-26T16:05:00Z", "America/Denver", "Thursday, November 26 at 9:05 AM MST"),  # no leading zero
    ("2026-11-26T20:30:00Z", "America/Los_Angeles", "Thursday, November 26 at 12:30 PM PST"),
    ("2026-07-14T17:00:00Z", "America/Phoenix", "Tuesday, July 14 at 10:00 AM MST"),  # Arizona: no DST
    ("2026-11-27T03:00:00Z", "America/Los_Angeles", "Thursday, November 26 at 7:00 PM PST"),  # still the 26th there
])
def test_a_visit_time_reads_in_the_patients_own_time_zone(moment, time_zone, reads):
    assert local_time(at(moment), time_zone) == reads


@pytest.mark.parametrize(("time_zone", "reads"), [
    ("America/New_York", "November 27, 2026"),     # 01:00 on the 27th
    ("America/Los_Angeles", "November 26, 2026"),  # 22:00 on the 26th
])
def test_a_visit_date_is_the_patients_local_date(time_zone, reads):
    assert local_date(at("2026-11-27T06:00:00Z"), time_zone) == reads


@pytest.mark.parametrize(("cents", "currency", "reads"), [
    (60000, "usd", "$600.00"),
    (100000, "usd", "$1,000.00"),
    (123456, "USD", "$1,234.56"),
    (199999, "usd", "$1,999.99"),
    (5, "usd", "$0.05"),
    (0, "usd", "$0.00"),
    (100_000_000, "usd", "$1,000,000.00"),
    (1200, "eur", "EUR 12.00"),
])
def test_an_amount_in_cents_reads_as_money(cents, currency, reads):
    assert money(cents, currency) == reads


@pytest.mark.parametrize("word", FORBIDDEN)
@pytest.mark.parametrize("dress", [str.lower, str.upper, str.title])
def test_each_forbidden_word_is_caught_whatever_its_case(word, dress):
    with pytest.raises(HealthDetailInText, match=word.lower()):
        assert_no_health_words(f"About your {dress(word)} visit", FORBIDDEN)


@pytest.mark.parametrize("text", ["Your IV-drip is ready", "(PTSD) follow-up", "ketamine.", "Ketamine-assisted",
                                  "your iv's"])
def test_a_forbidden_word_is_caught_next_to_punctuation(text):
    with pytest.raises(HealthDetailInText):
        assert_no_health_words(text, FORBIDDEN)


@pytest.mark.parametrize("text", [
    "Greetings from Spain",           # pain
    "A painting class",               # pain
    "Ivy Diaz, your visit",           # iv
    "Division of labour",             # iv
    "The ivory tower",                # iv
    "Dripping tap",                   # drip
    "Painless parking downtown",      # pain
    "Your home visit is confirmed for Thursday, November 26 at 10:00 AM MST.",
])
def test_innocent_words_that_contain_a_forbidden_one_pass(text):
    assert_no_health_words(text, FORBIDDEN)


@pytest.mark.parametrize("text", ["Your infusions are booked", "Two doses left", "Your medications",
                                  "Treatments this week"])
def test_the_plural_of_a_forbidden_word_is_caught(text):
    with pytest.raises(HealthDetailInText):
        assert_no_health_words(text, FORBIDDEN)


