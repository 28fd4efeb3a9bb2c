"""CLI tables on a narrow terminal."""

from __future__ import annotations

import pytest

from opsrail.cli._output import table


@pytest.mark.parametrize("width", [80, 100])
def test_nine_columns_beside_a_long_identifier(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    columns = ["id", "decision", "version", "outputs", "confidence", "route", "status", "by", "created"]
    row = ("dec_01a250a4df015fcf297accce", "tiny", 6, '{"label":"hw"}', "0.69", "review", "overridden", "dana", "")
    table("Decision records", columns, [row])
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= width
    assert "dec_01a250a4df015fcf297accce" in out and "tiny" in out  # the id whole, on one line
    if width >= 100:  # with room for them, headers and short values are whole too
        assert "review" in out and "confidence" in out and "version" in out


def test_at_80_columns_ids_stay_whole_dates_unbroken_and_nothing_is_cut(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    rows = [
        ("run_01a251400808283d5ad92210", "quote-discount", 2, "cancelled", "2026-12-07 16:04:40Z", "cancelled by root"),
        ("run_01a25140026ab6640c49d5ca", "enterprise-onboarding", 12, "failed", "2026-12-07 16:04:39Z", "x" * 90),
    ]
    table("Runs (newest first)", ["id", "playbook", "version", "status", "created", "error"], rows)
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80
    for run_id, *_ in rows:
        assert any(run_id in line for line in lines)  # on one line: it can be copied
    assert sum("2026-12-07" in line for line in lines) == 2 and any("version" in line for line in lines)


def test_a_wide_terminal_shows_every_value_on_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    row = ("dl_01a2512d3e29596a771f4164", "2026-12-07 15:44:09Z", "ingest:nope", "pending", "no mapper named 'x'")
    table("Dead letters", ["id", "received", "channel", "status", "reason"], [row])
    [line] = [line for line in capsys.readouterr().out.splitlines() if "dl_01a" in line]
    assert all(value in line for value in row)


def test_two_long_free_text_columns_share_the_line_and_lines_count_alone(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    rows = [
        (
            "sev1-premium",
            "severity == 1 && premium_support && region in ['EMEA', 'APAC']",
            "team = major-incident\ncredit_exposure = ${ arr * 0.05 }\npage_oncall = true",
        ),
        ("default", "true", "team = service-desk"),
    ]
    table("Rules", ["id", "when", "then"], rows)
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100
    # Each output of a rule on a line of its own: the cell is as wide as its longest line, not all three together.
    assert any("credit_exposure = ${ arr * 0.05 }" in line for line in lines)
    assert any(line.rstrip().endswith("page_oncall = true") for line in lines)
    # The condition folds beside it rather than taking the line.
    assert not any("severity == 1 && premium_support && region in ['EMEA', 'APAC']" in line for line in lines)


@pytest.mark.parametrize("width", [80, 160])
def test_optional_columns_make_way_on_a_narrow_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    columns = ["id", "kind", "title", "roles", "assignee", "needs", "due", "run"]
    row = (
        "task_01a251fce8277f6e5f017828",
        "approval",
        "Discount of 25% on q1 (band 5.0%)",
        "finance_controller, approver",
        "nobody-here",
        2,
        "2026-12-10 19:30:58Z",
        "run_01a251fce1a16a6906181208",
    )
    table("Open tasks", columns, [row], optional=("run", "needs", "assignee"))
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= width
    if width == 80:
        [header] = [line for line in out.splitlines() if line.strip().startswith("id ")]
        assert "run_01a" not in out and "assignee" not in header and "needs" not in header
        assert "(run, needs, assignee: on a wider terminal, or with --json)" in out
        assert "2026-12-10" in out and "approval" in out  # what stays is whole
    else:
        assert "run_01a251fce1a16a6906181208" in out and "on a wider terminal" not in out
