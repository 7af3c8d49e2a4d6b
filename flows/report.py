"""The Markdown report a person reads for each pipeline run (a Prefect artifact)."""

from __future__ import annotations

import json

from tasks.promotion import RegistrationOutcome

ROWS = ("accuracy", "lateral_recall", "roc_auc", "test_images", "confusion_matrix")


def _cell(value: object) -> str:
    return f"`{json.dumps(value)}`" if isinstance(value, list) else str(value)


def metric_table(columns: dict[str, dict[str, object]]) -> str:
    """Lay out metrics of one or more models side by side."""
    lines = [
        "| metric | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    lines += [
        f"| {row} | " + " | ".join(_cell(m.get(row)) for m in columns.values()) + " |"
        for row in ROWS
    ]
    return "\n".join(lines) + "\n"


def render_run_report(
    metrics: dict[str, object],
    outcome: RegistrationOutcome,
    changes: dict[str, dict[str, int]],
) -> str:
    """Describe the decision, the numbers behind it and what data changed."""
    decision = outcome.decision
    if decision is None:
        headline = f"No new model: the weights are already **{outcome.version}**."
    elif outcome.version:
        headline = f"**{decision.action}** as **{outcome.version}**."
    else:
        headline = "**Not registered.**"
    reasons = "".join(f"- {r}\n" for r in decision.reasons) if decision else ""
    sections = [
        f"# Training pipeline run\n\n{headline}\n\n{reasons}",
        "## Challenger on its own test set\n\n" + metric_table({"challenger": metrics}),
    ]
    if decision and decision.frozen:
        sections.append(
            f"## Challenger and champion {decision.champion_version} on the "
            "champion's test images\n\n" + metric_table(decision.frozen)
        )
    rows = "".join(
        f"| {v} | {c['added']} | {c['removed']} |\n" for v, c in changes.items()
    )
    sections.append(
        "## Data changes since the previous version\n\n"
        f"| view | added | removed |\n|---|---|---|\n{rows}"
    )
    return "\n".join(sections)
