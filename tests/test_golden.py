"""Byte identity of the audit's outputs across refactors (issue: architecture redesign).

``tests/golden/hashes.json`` holds the SHA-256 of every JSON, CSV and HTML output of two
audits, taken before the redesign: the offline demo and 200 real ISIC 2018 test images
audited from a seeded scores CSV. Each saved audit is also re-rendered with
``skinaudit report --from``, which must give the same report.html byte for byte. A change that alters any of these bytes must say why and
regenerate the file (``python tests/golden/outputs.py --write``).
"""
from __future__ import annotations

import json

import pytest

from golden.outputs import HASHES, demo_outputs, isic200_outputs

pytestmark = pytest.mark.slow


def _expected(name: str) -> dict:
    return json.loads(HASHES.read_text())[name]


def _rerender_matches(folder) -> None:
    """``skinaudit report --from`` on the saved audit gives the audit's own report.html, byte for byte."""
    from typer.testing import CliRunner

    from skinaudit.cli import app

    out = folder.parent / f"{folder.name}-rerendered"
    res = CliRunner().invoke(app, ["report", "--from", str(folder / "audit.json"), "--out", str(out), "--no-pdf"])
    assert res.exit_code == 0, res.output
    assert (out / "report.html").read_bytes() == (folder / "report.html").read_bytes()


def _compare(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want), "the audit writes a different set of files"
    changed = [name for name in want if got[name] != want[name]]
    assert not changed, f"outputs changed: {changed}"


def test_demo_outputs_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # restored after the test; outputs set their own
    _compare(demo_outputs(tmp_path / "demo"), _expected("demo"))
    _rerender_matches(tmp_path / "demo")


@pytest.mark.realdata
def test_isic200_outputs_unchanged(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    _compare(isic200_outputs(tmp_path / "isic200", shared_data(".")), _expected("isic200"))
    _rerender_matches(tmp_path / "isic200")
