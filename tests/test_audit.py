"""scripts/audit.py's verdict on pip-audit reports: a skipped package is never a pass."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def audit() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "scripts" / "audit.py"
    spec = importlib.util.spec_from_file_location("vigil_audit_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _skipped(name: str) -> dict[str, str]:
    return {
        "name": name,
        "skip_reason": f"Dependency not found on PyPI and could not be audited: {name} (1.0)",
    }


def test_nothing_checked_is_not_a_pass(audit: ModuleType) -> None:
    # What pip-audit reports, with exit status 0 and "No known vulnerabilities found", behind a
    # package mirror: PyPI's JSON API answers 404 for everything.
    status, lines = audit.verdict({"dependencies": [_skipped("anyio"), _skipped("httpx")]}, "")
    assert status == audit.NOT_RUN == 3
    assert "COULD NOT RUN" in lines[0] and "NOT a pass" in lines[0]
    assert not any("passed" in line for line in lines)


def test_partly_checked_names_what_was_not(audit: ModuleType) -> None:
    report = {"dependencies": [{"name": "anyio", "version": "4.0", "vulns": []}, _skipped("httpx")]}
    status, lines = audit.verdict(report, "")
    assert status == audit.NOT_RUN
    assert "INCOMPLETE" in lines[0] and "httpx" in lines[0]


def test_no_report_is_not_a_pass(audit: ModuleType) -> None:
    status, lines = audit.verdict(None, "Traceback…\nrequests.exceptions.ConnectionError: no route\n")
    assert status == audit.NOT_RUN
    assert "COULD NOT RUN" in lines[0] and "ConnectionError" in lines[1]


def test_a_vulnerability_fails_even_if_some_were_skipped(audit: ModuleType) -> None:
    vuln = {"id": "PYSEC-2024-1", "fix_versions": ["2.0"], "aliases": [], "description": ""}
    report = {"dependencies": [{"name": "jinja2", "version": "1.0", "vulns": [vuln]}, _skipped("httpx")]}
    status, lines = audit.verdict(report, "")
    assert status == audit.VULNERABLE == 1
    assert lines[0] == "VULNERABLE: jinja2 1.0: PYSEC-2024-1 (fixed in 2.0)"


def test_all_checked_and_clean_passes(audit: ModuleType) -> None:
    report = {"dependencies": [{"name": "anyio", "version": "4.0", "vulns": []}]}
    assert audit.verdict(report, "") == (audit.PASSED, [
        "dependency audit passed: 1 distributions, no known vulnerabilities"])  # fmt: skip
