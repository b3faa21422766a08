"""The violation catalogue carries what a printed notice cites: every code has a legal basis."""

from __future__ import annotations

from vigil.catalogue import catalogue


def test_every_code_has_a_legal_basis_in_chinese() -> None:
    missing = [code for code, kind in catalogue().items() if not kind.legal_basis_zh.strip()]
    assert missing == []
    # Each names the law or rule it rests on, in Chinese book-title marks or as the bureau's rules.
    for code, kind in catalogue().items():
        assert "《" in kind.legal_basis_zh or kind.legal_basis_zh.startswith("本局"), code
