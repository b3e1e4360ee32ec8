"""Every contraindication rule of the rule set in force, with a case that fires it and one that does not.

Absolute rules decline, relative ones go to a clinician; a decision lists each fired rule with the inputs that
fired it and the rule-set version. Patients are told the outcome in plain words, never the condition.
"""

import pytest

from chassis.config import ConfigurationInvalid, VersionedConfig
from services.intake.contraindications import ContraindicationRulesSchema, Facts, evaluate, explained
from services.intake.dependencies import ClinicConfiguration
from services.intake.walkthrough import UNREMARKABLE_ANSWERS

RULES = ClinicConfiguration().contraindications.effective_at()
HISTORY = UNREMARKABLE_ANSWERS["health-history"]


def facts(medications=(), allergies=(), **history) -> Facts:
    return Facts({"health-history": {**HISTORY, **history}}, list(medications), list(allergies))


# (rule, facts that fire it, facts that do not)
CASES = [
    ("pregnancy_or_breastfeeding", facts(pregnant=1), facts()),
    ("psychosis_or_schizophrenia", facts(psychosis=1), facts()),
    ("current_mania", facts(mania=1), facts()),
    ("uncontrolled_hypertension", facts(high_blood_pressure=1, blood_pressure_uncontrolled=1),
     facts(high_blood_pressure=1)),
    ("unstable_heart_disease", facts(heart_disease_unstable=1), facts()),
    ("severe_liver_disease", facts(liver_disease_severe=1), facts()),
    ("raised_intracranial_or_intraocular_pressure", facts(raised_pressure_head_or_eye=1), facts()),
    ("substance_use_disorder", facts(substance_use=1), facts()),
    ("ketamine_allergy", facts(allergies=["Ketamine"]), facts(allergies=["penicillin"])),
    ("bladder_inflammation", facts(bladder_inflammation=1), facts()),
    ("benzodiazepines", facts(medications=["Clonazepam 0.5 mg"]), facts(medications=["sertraline"])),
    ("maois", facts(medications=["phenelzine"]), facts(medications=["escitalopram"])),
    ("lamotrigine", facts(medications=["Lamictal XR"]), facts(medications=["lithium"])),
    ("seizures", facts(seizures=1), facts()),
    ("thyroid_disease", facts(thyroid_disease=1), facts()),
    ("controlled_hypertension", facts(high_blood_pressure=1), facts(high_blood_pressure=1,
                                                                   blood_pressure_uncontrolled=1)),
    ("severe_lung_disease", facts(lung_disease_severe=1), facts()),
]


def test_every_rule_of_the_rule_set_has_its_cases():
    assert sorted(code for code, _, _ in CASES) == sorted(rule["code"] for rule in RULES["rules"])


@pytest.mark.parametrize(("code", "firing", "quiet"), CASES, ids=[case[0] for case in CASES])
def test_a_rule_fires_on_its_condition_and_not_without_it(code, firing, quiet):
    fired = {rule["code"]: rule for rule in evaluate(RULES, firing).fired}
    assert code in fired
    assert fired[code]["inputs"]  # what fired it is kept with it
    assert code not in {rule["code"] for rule in evaluate(RULES, quiet).fired}


@pytest.mark.parametrize(("code", "firing", "quiet"), CASES, ids=[case[0] for case in CASES])
def test_absolute_rules_decline_and_relative_ones_go_to_a_clinician(code, firing, quiet):
    kind = next(rule["kind"] for rule in RULES["rules"] if rule["code"] == code)
    decision = evaluate(RULES, firing)
    assert decision.outcome == ("decline" if kind == "absolute" else "review")


def test_a_decision_keeps_the_inputs_that_fired_each_rule_and_the_rule_set_version():
    decision = evaluate(RULES, facts(medications=["clonazepam", "sertraline"], seizures=1))
    assert decision.rules_version == RULES.version
    assert decision.fired == [
        {"code": "benzodiazepines", "kind": "relative", "inputs": {"medications": ["clonazepam"]}},
        {"code": "seizures", "kind": "relative", "inputs": {"health-history.seizures": 1}},
    ]


def test_nothing_fires_for_unremarkable_answers():
    assert evaluate(RULES, facts()).fired == []


def test_a_patient_is_told_the_outcome_without_the_condition_and_a_clinician_gets_the_rules():
    fired = evaluate(RULES, facts(pregnant=1, medications=["clonazepam"])).fired
    for_patient = explained(fired, RULES, "patient")
    assert [entry["kind"] for entry in for_patient] == ["absolute"]
    words = for_patient[0]["text"].lower()
    assert not any(word in words for word in ("pregnan", "breastfeed", "clonazepam", "benzo"))
    for_clinician = explained(fired, RULES, "clinician")
    assert [entry["code"] for entry in for_clinician] == ["pregnancy_or_breastfeeding", "benzodiazepines"]
    assert all(entry["text"] and entry["inputs"] for entry in for_clinician)


@pytest.mark.parametrize("rule", [
    {"code": "x", "kind": "sometimes", "clinician_text": "x", "when": {"answer": {"instrument": "a", "item": "b",
                                                                                     "at_least": 1}}},
    {"code": "x", "kind": "absolute", "clinician_text": "x", "when": {}},
    {"code": "x", "kind": "absolute", "clinician_text": "x",
     "when": {"answer": {"instrument": "a", "item": "b", "at_least": 1, "at_most": 0}}},
    {"code": "x", "kind": "absolute", "clinician_text": "x", "when": {"medication_any": []}},
])
def test_a_wrong_rule_stops_the_service_at_start_up(rule):
    document = {"versions": [{"version": "x", "effective_from": "2026-01-01T00:00:00Z",
                              "patient_texts": {"absolute": "a", "relative": "r"}, "rules": [rule]}]}
    with pytest.raises(ConfigurationInvalid):
        VersionedConfig.from_document("contraindications.yml", document, ContraindicationRulesSchema())


@pytest.mark.parametrize("misread, complaint", [
    ({"instrument": "health-history", "item": "pregnent"}, "reads item 'pregnent'"),      # a typo in the item
    ({"instrument": "health-hist", "item": "pregnant"}, "reads instrument 'health-hist'"),
    ({"instrument": "gad-7", "item": "gad7_1"}, "does not require"),                     # asked, but not before
])
def test_a_rule_reading_an_answer_that_is_never_asked_stops_the_service_at_start_up(tmp_path, misread, complaint):
    """A rule that can never fire would silently switch an exclusion off: intake refuses to start instead."""
    import shutil

    import yaml

    from services.intake.dependencies import CONFIG_DIR, ClinicConfiguration

    shutil.copytree(CONFIG_DIR, tmp_path, dirs_exist_ok=True)
    rules_file = tmp_path / "contraindications.yml"
    document = yaml.safe_load(rules_file.read_text())
    document["versions"][0]["rules"][0]["when"] = {"answer": {**misread, "at_least": 1}}
    rules_file.write_text(yaml.safe_dump(document))

    with pytest.raises(ConfigurationInvalid) as refused:
        ClinicConfiguration(tmp_path)
    assert complaint in str(refused.value) and "pregnancy_or_breastfeeding" in str(refused.value)
