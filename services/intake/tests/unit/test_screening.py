"""Screening instruments scored by their published rules, from the versioned configuration.

Each band edge of each instrument is checked (the total just below and at each boundary), with the published
worked examples; a risk answer is found on PHQ-9 item 9 and on any item of the risk screen; answers are
refused item by item when incomplete or out of range.
"""

import copy

import pytest

from chassis.config import ConfigurationInvalid, VersionedConfig
from chassis.errors import InvalidInput
from services.intake.dependencies import ClinicConfiguration
from services.intake.screening import (
    InstrumentsSchema,
    UnknownInstrument,
    checked_answers,
    instrument,
    score,
    screening_complete,
)

CLINIC = ClinicConfiguration()
INSTRUMENTS = CLINIC.instruments.effective_at()


def answers_totalling(code: str, total: int, **fixed: int) -> dict[str, int]:
    """Answers to every item of ``code`` adding up to ``total`` (highest answers first), with some items fixed."""
    form = instrument(INSTRUMENTS, code)
    top = form["answers"]["max"]
    answers, left = {}, total - sum(fixed.values())
    for item in form["items"]:
        if item["code"] in fixed:
            answers[item["code"]] = fixed[item["code"]]
            continue
        answers[item["code"]] = min(top, left)
        left -= answers[item["code"]]
    assert left == 0, "total out of reach"
    return answers


@pytest.mark.parametrize(("code", "total", "band"), [
    ("phq-9", 0, "minimal"), ("phq-9", 4, "minimal"), ("phq-9", 5, "mild"), ("phq-9", 9, "mild"),
    ("phq-9", 10, "moderate"), ("phq-9", 14, "moderate"), ("phq-9", 15, "moderately severe"),
    ("phq-9", 19, "moderately severe"), ("phq-9", 20, "severe"), ("phq-9", 27, "severe"),
    ("gad-7", 0, "minimal"), ("gad-7", 4, "minimal"), ("gad-7", 5, "mild"), ("gad-7", 9, "mild"),
    ("gad-7", 10, "moderate"), ("gad-7", 14, "moderate"), ("gad-7", 15, "severe"), ("gad-7", 21, "severe"),
    ("pain-nrs", 0, "none"), ("pain-nrs", 1, "mild"), ("pain-nrs", 3, "mild"), ("pain-nrs", 4, "moderate"),
    ("pain-nrs", 6, "moderate"), ("pain-nrs", 7, "severe"), ("pain-nrs", 10, "severe"),
])
def test_a_total_falls_in_its_published_severity_band(code, total, band):
    fixed = {"phq9_9": 0} if code == "phq-9" and total <= 24 else {}
    scored = score(instrument(INSTRUMENTS, code), answers_totalling(code, total, **fixed))
    assert (scored.total, scored.band) == (total, band)


def test_the_phq9_worked_example_sums_the_nine_items():
    # Kroenke et al.: columns of 0, 1, 2 and 3 add up; this patient scores 1+2+2+3+0+1+1+2+0 = 12, moderate.
    answers = dict(zip([f"phq9_{n}" for n in range(1, 10)], [1, 2, 2, 3, 0, 1, 1, 2, 0], strict=True))
    scored = score(instrument(INSTRUMENTS, "phq-9"), answers)
    assert (scored.total, scored.band, scored.risk) == (12, "moderate", False)


def test_the_gad7_worked_example_sums_the_seven_items():
    # Spitzer et al. 2006: "several days" 1, "more than half the days" 2, "nearly every day" 3, summed;
    # 2+2+1+2+1+1+1 = 10 is the moderate band's first score (and the usual cut-off for an anxiety disorder).
    answers = dict(zip([f"gad7_{n}" for n in range(1, 8)], [2, 2, 1, 2, 1, 1, 1], strict=True))
    scored = score(instrument(INSTRUMENTS, "gad-7"), answers)
    assert (scored.total, scored.band) == (10, "moderate")


def test_the_pcl5_worked_example_sums_twenty_items_rated_0_to_4():
    # Weathers et al. 2013 (National Center for PTSD): each of the 20 items 0 ("not at all") to 4 ("extremely");
    # "moderately" (2) on every item totals 40, above the provisional cut-off of 33.
    scored = score(instrument(INSTRUMENTS, "pcl-5"), {f"pcl5_{n}": 2 for n in range(1, 21)})
    assert (scored.total, scored.cut_off_met) == (40, True)


def test_the_pain_scale_is_the_one_number_given():
    scored = score(instrument(INSTRUMENTS, "pain-nrs"), answers_totalling("pain-nrs", 6))
    assert (scored.total, scored.band) == (6, "moderate")


@pytest.mark.parametrize(("total", "met"), [(0, False), (32, False), (33, True), (80, True)])
def test_the_pcl5_total_is_compared_with_the_provisional_cut_off(total, met):
    scored = score(instrument(INSTRUMENTS, "pcl-5"), answers_totalling("pcl-5", total))
    assert (scored.total, scored.cut_off_met, scored.band) == (total, met, None)


@pytest.mark.parametrize(("item_9", "risk"), [(0, False), (1, True), (2, True), (3, True)])
def test_phq9_item_9_above_zero_is_a_risk_answer_whatever_the_total(item_9, risk):
    scored = score(instrument(INSTRUMENTS, "phq-9"), answers_totalling("phq-9", item_9, phq9_9=item_9))
    assert scored.risk is risk
    assert scored.risk_items == (["phq9_9"] if risk else [])


@pytest.mark.parametrize("positive", [f"risk_{n}" for n in range(1, 7)])
def test_any_yes_on_the_risk_screen_is_a_risk_answer_and_it_has_no_score(positive):
    answers = {f"risk_{n}": 0 for n in range(1, 7)} | {positive: 1}
    scored = score(instrument(INSTRUMENTS, "risk-screen"), answers)
    assert (scored.risk_items, scored.total, scored.band) == ([positive], None, None)


def test_all_noes_on_the_risk_screen_is_no_risk():
    assert not score(instrument(INSTRUMENTS, "risk-screen"), {f"risk_{n}": 0 for n in range(1, 7)}).risk


@pytest.mark.parametrize(("answers", "bad_items"), [
    ({f"gad7_{n}": 1 for n in range(1, 7)}, ["gad7_7"]),  # one item unanswered
    ({f"gad7_{n}": 1 for n in range(1, 8)} | {"gad7_3": 4}, ["gad7_3"]),  # above the range
    ({f"gad7_{n}": 1 for n in range(1, 8)} | {"gad7_2": -1}, ["gad7_2"]),  # below it
    ({f"gad7_{n}": 1 for n in range(1, 8)} | {"gad7_1": True}, ["gad7_1"]),  # not a number
    ({f"gad7_{n}": 1 for n in range(1, 8)} | {"gad7_1": "2"}, ["gad7_1"]),
    ({f"gad7_{n}": 1 for n in range(1, 8)} | {"phq9_1": 1}, ["phq9_1"]),  # another instrument's item
])
def test_incomplete_or_out_of_range_answers_are_refused_item_by_item(answers, bad_items):
    with pytest.raises(InvalidInput) as refused:
        checked_answers(instrument(INSTRUMENTS, "gad-7"), answers)
    assert sorted(refused.value.details["errors"]["answers"]) == bad_items


def test_an_unknown_instrument_is_not_found():
    with pytest.raises(UnknownInstrument) as missing:
        instrument(INSTRUMENTS, "madrs")
    assert missing.value.status == 404 and missing.value.code == "instrument_not_found"
    assert list(missing.value.details["errors"]) == ["instrument"]


def test_screening_is_complete_when_every_required_instrument_was_submitted():
    required = INSTRUMENTS["required_before_review"]
    assert not screening_complete([{"instrument": code} for code in required[:-1]], INSTRUMENTS)
    assert screening_complete([{"instrument": code} for code in required] + [{"instrument": "gad-7"}], INSTRUMENTS)


def a_broken_copy(change) -> dict:
    document = {"versions": [{"version": "x", "effective_from": "2026-01-01T00:00:00Z",
                              **copy.deepcopy(INSTRUMENTS.settings)}]}
    change(document["versions"][0])
    return document


@pytest.mark.parametrize("change", [
    lambda v: v["instruments"][0]["bands"].pop(1),  # a gap between bands
    lambda v: v["instruments"][0]["bands"][-1].update(max=26),  # does not reach the highest total
    lambda v: v["instruments"][0]["risk_items"].append({"item": "nope", "at_least": 1}),
    lambda v: v["instruments"][0]["items"].append(dict(v["instruments"][0]["items"][0])),  # a duplicate item
    lambda v: v["required_before_review"].append("madrs"),
    lambda v: v["instruments"][0].update(scoring="average"),
])
def test_a_wrong_instrument_file_stops_the_service_at_start_up(change):
    with pytest.raises(ConfigurationInvalid):
        VersionedConfig.from_document("instruments.yml", a_broken_copy(change), InstrumentsSchema())
