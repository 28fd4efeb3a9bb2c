"""CLI tables on a narrow terminal."""

from __future__ import annotations

import pytest

from opsrail.cli._output import table


def test_columns_beside_a_long_identifier_stay_readable_at_80_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    columns = ["id", "decision", "version", "outputs", "confidence", "route", "status", "by", "created"]
    row = ("dec_01a250a4df015fcf297accce", "tiny", 6, '{"label":"hw"}', "0.69", "review", "overridden", "dana", "")
    table("Decision records", columns, [row])
    out = capsys.readouterr().out
    assert "tiny" in out and "overridden" in out and "dana" in out
