"""Console pieces: `keys rotate` re-seals review notes, the gateway does not route it, the PDF."""

from __future__ import annotations

import secrets
import subprocess
import sys

import psycopg
import pytest
from tests.conftest import TEST_ENCRYPTION_KEY, Database, service_env
from tests.console.conftest import break_glass, write

from healthstack.core.crypto import DecryptionError, Keyring, key_id_of
from healthstack.security import audit

NEW_KEY = secrets.token_hex(32)


def test_keys_rotate_reseals_review_notes(database: Database) -> None:
    write(database, [break_glass("doctor-1", "00000000-0000-4000-8000-00000000000a")])
    old = Keyring(bytes.fromhex(TEST_ENCRYPTION_KEY))
    with psycopg.connect(database.url, autocommit=True) as conn:  # as the service role writes it
        chain, seq = conn.execute("SELECT chain_id, seq FROM audit_log").fetchone() or (0, 0)
        key_id, blob = old.encrypt(b"checked with the ward", audit.review_note_aad(chain, seq))
        conn.execute("INSERT INTO audit_review (chain_id, seq, reviewer, note_key, note) "
                     "VALUES (%s, %s, 'auditor-1', %s, %s)", (chain, seq, key_id, blob))  # fmt: skip
    env = service_env(database, ENCRYPTION_KEY=NEW_KEY, ENCRYPTION_OLD_KEYS=TEST_ENCRYPTION_KEY,
                      MIGRATION_DATABASE_URL=database.owner_url)  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "healthstack.cli", "keys", "rotate"], env=env,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 review notes" in result.stdout
    with psycopg.connect(database.owner_url) as conn:
        row = conn.execute("SELECT note_key, note FROM audit_review").fetchone()
    assert row is not None
    assert row[0] == key_id_of(bytes.fromhex(NEW_KEY))
    only_new = Keyring(bytes.fromhex(NEW_KEY))
    assert only_new.decrypt(row[0], bytes(row[1]), audit.review_note_aad(chain, seq)) == (
        b"checked with the ward"
    )
    with pytest.raises(DecryptionError):  # bound to its record: never opens as another's note
        only_new.decrypt(row[0], bytes(row[1]), audit.review_note_aad(chain, seq + 1))


def test_the_gateway_does_not_route_the_console() -> None:
    import yaml
    from tests.conftest import REPO

    istio = REPO / "deploy" / "components" / "istio"
    routes = yaml.safe_load((istio / "virtualservice.yaml").read_text())
    prefixes = [m["uri"]["prefix"] for r in routes["spec"]["http"] for m in r["match"]]
    assert prefixes == ["/api/"]
    policies = list(yaml.safe_load_all((istio / "authorizationpolicies.yaml").read_text()))
    paths = [p for doc in policies for rule in doc["spec"].get("rules", [])
             for to in rule.get("to", []) for p in to["operation"].get("paths", [])]  # fmt: skip
    assert not [p for p in paths if p.startswith("/console")]
    assert "/api/*" in paths


def test_the_pdf_escapes_text_and_spans_pages() -> None:
    import io

    from pypdf import PdfReader

    from healthstack.console import pdf

    rows = [(f"row {i}", "evil) Tj (injected", "naïve ünïcode ✓") for i in range(130)]
    document = pdf.render("Title (with parentheses) \\ and a backslash", rows)
    reader = PdfReader(io.BytesIO(document))
    assert len(reader.pages) >= 3  # 130 rows at 55 lines a page
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Title (with parentheses) \\ and a backslash" in text
    assert "evil) Tj (injected" in text  # shown as text, never run as an operator
    assert "row 129" in text
    assert "naïve ünïcode ?" in text  # outside Latin-1: replaced, never broken
