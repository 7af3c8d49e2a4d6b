"""The gate: absolute thresholds, the champion comparison and their outcome."""

from __future__ import annotations

import pytest

from tasks.register import check_thresholds, compare_with_champion, decide


def metrics(accuracy: float, recall: float, auc: float | None = 1.0) -> dict:
    return {"accuracy": accuracy, "lateral_recall": recall, "roc_auc": auc}


@pytest.mark.parametrize(
    ("accuracy", "recall", "failures"),
    [(0.97, 0.95, 0), (0.94, 0.95, 1), (0.97, 0.80, 1), (0.50, 0.10, 2)],
)
def test_check_thresholds_counts_each_failed_threshold(accuracy, recall, failures):
    assert len(check_thresholds(metrics(accuracy, recall), 0.95, 0.90)) == failures


def test_check_thresholds_names_the_metric_and_the_limit():
    (reason,) = check_thresholds(metrics(0.9, 1.0), 0.95, 0.9)
    assert reason == "test accuracy 0.9000 is below 0.95"


def test_compare_with_champion_allows_a_regression_within_the_margin():
    assert compare_with_champion(metrics(0.995, 1.0), metrics(1.0, 1.0), 0.01) == []


def test_compare_with_champion_flags_each_metric_beyond_the_margin():
    worse = compare_with_champion(metrics(0.9, 0.5, 0.8), metrics(1.0, 1.0, 1.0), 0.01)
    assert [reason.split()[0] for reason in worse] == [
        "accuracy",
        "lateral_recall",
        "roc_auc",
    ]


def test_compare_with_champion_skips_auc_undefined_on_one_class():
    assert compare_with_champion(metrics(1.0, 1.0, None), metrics(1.0, 1.0), 0.0) == []


def test_decide_rejects_below_thresholds_whatever_the_champion():
    decision = decide(metrics(0.5, 0.5), 0.95, 0.9, 0.01, None, {})
    assert decision.action == "reject"


def test_decide_promotes_the_first_model():
    decision = decide(metrics(1.0, 1.0), 0.95, 0.9, 0.01, None, {})
    assert (decision.action, decision.reasons) == ("promote", ("no champion in prod",))


def test_decide_registers_without_promoting_a_worse_challenger():
    frozen = {"challenger": metrics(0.96, 0.9), "champion": metrics(1.0, 1.0)}
    decision = decide(metrics(0.97, 0.95), 0.95, 0.9, 0.01, "v0.0.1", frozen)
    assert decision.action == "register"
    assert decision.champion_version == "v0.0.1"
    assert decision.as_dict()["frozen"]["champion"]["accuracy"] == 1.0


def test_decide_promotes_a_challenger_as_good_as_the_champion():
    frozen = {"challenger": metrics(1.0, 1.0), "champion": metrics(1.0, 1.0)}
    assert decide(metrics(1.0, 1.0), 0.95, 0.9, 0.01, "v0.0.1", frozen).action == (
        "promote"
    )


def test_decide_only_registers_when_no_champion_test_image_remains():
    decision = decide(metrics(1.0, 1.0), 0.95, 0.9, 0.01, "v0.0.1", {})
    assert decision.action == "register"
    assert "cannot be compared" in decision.reasons[0]
