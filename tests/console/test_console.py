"""The auditor console: auditors only, no-store, every view audited, filters, review, accounting."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from pypdf import PdfReader
from tests.conftest import Database, Service, start_service
from tests.console.conftest import (
    AUDITOR,
    CLINICIAN,
    PATIENT_A,
    PATIENT_AUDITOR,
    PATIENT_B,
    REASON,
    bearer,
    break_glass,
    csrf_in,
    disclosure,
    login,
    write,
)  # fmt: skip

from healthstack.console import pages
from healthstack.security.audit_event import AuditEvent

ROUTES = [("GET", "/console"), ("GET", "/console/"), ("GET", "/console/break-glass"), ("GET", "/console/disclosures"),
          ("GET", f"/console/disclosures?patient={PATIENT_A}&format=csv"), ("GET", "/console/status"),
          ("POST", "/console/break-glass/1-1/review"), ("POST", "/console/logout"),
          ("POST", "/console/login")]  # fmt: skip


@pytest.fixture(scope="module")
def console(
    module_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    write(module_database, [
        *[AuditEvent(interaction="search", outcome="success", subject=f"nurse-{i % 3}",
                     resource_type="Observation") for i in range(55)],
        AuditEvent(interaction="read", outcome="denied", subject="intruder", resource_type="Patient"),
        break_glass("doctor-1", PATIENT_A),
        break_glass("doctor-2", PATIENT_B, "cardiac arrest, records needed now"),
        disclosure(PATIENT_A, "bulk-export", types=["Observation"], count="12", export_id="e-1"),
        disclosure(PATIENT_A, "ai-summary", provider="=cmd|' /C calc'!A0", model="m"),
        disclosure(PATIENT_B, "bulk-export", types=["Condition"], count="3", export_id="e-2"),
    ])  # fmt: skip
    service = start_service(module_database, tmp_path_factory.mktemp("console") / "svc.log")
    yield service
    service.stop()


def records(db: Database, where: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(db.owner_url) as conn:
        rows = conn.execute(f"SELECT interaction, outcome, content FROM audit_log WHERE {where}")
        return [(str(a), str(b), str(c)) for a, b, c in rows.fetchall()]


def test_non_auditors_get_403_on_every_route_and_nothing_is_cached(
    console: Service, module_database: Database
) -> None:
    for token in (CLINICIAN, PATIENT_AUDITOR):
        for method, path in ROUTES:
            data = {"token": token} if path.endswith("/login") else {"note": "x", "csrf": "x"}
            headers = {} if path.endswith("/login") else bearer(token)
            response = httpx.request(method, console.base_url + path, headers=headers,
                                     data=data if method == "POST" else None)  # fmt: skip
            assert response.status_code == 403, (path, response.status_code)
            assert response.headers["cache-control"] == "no-store"
            assert (
                "set-cookie" not in response.headers
                or "Max-Age=0" in response.headers["set-cookie"]
            )
    denied = records(module_database, "outcome = 'denied' AND subject = 'clinician-1'")
    assert len(denied) == len(ROUTES)  # each refusal is an audit record
    for method, path in ROUTES:  # no credentials at all: a login redirect or 401, never content
        response = httpx.request(method, console.base_url + path,
                                 data={"csrf": "x"} if method == "POST" else None)  # fmt: skip
        assert response.status_code == (303 if method == "GET" else 401), path
        assert response.headers["cache-control"] == "no-store"
    page = httpx.get(console.base_url + "/console/", headers=bearer(AUDITOR))
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert "script-src" not in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["pragma"] == "no-cache"
    assert "<script" not in page.text


def test_console_without_its_slash_answers_like_the_console(console: Service) -> None:
    anonymous = httpx.get(console.base_url + "/console")
    assert anonymous.status_code == 303  # to the login form, not a bare 307
    assert (
        anonymous.headers["location"]
        == httpx.get(console.base_url + "/console/").headers["location"]
    )
    assert anonymous.headers["cache-control"] == "no-store"
    page = httpx.get(console.base_url + "/console", headers=bearer(AUDITOR))
    assert page.status_code == 200
    assert 'action="/console/"' in page.text  # the trail's filter form
    assert httpx.post(console.base_url + "/console", headers=bearer(AUDITOR)).status_code == 405


def test_every_form_control_has_a_label(console: Service) -> None:
    auth = bearer(AUDITOR)
    for path in ("/console/", "/console/break-glass", f"/console/disclosures?patient={PATIENT_A}",
                 "/console/login"):  # fmt: skip
        page = httpx.get(console.base_url + path, headers=auth).text
        controls = re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', page)
        assert controls, path
        for control in controls:
            assert f'<label for="{control}">' in page, (path, control)


def test_trail_search_filters_pages_and_is_audited(
    console: Service, module_database: Database
) -> None:
    base, auth = console.base_url + "/console/", bearer(AUDITOR)
    first = httpx.get(base, headers=auth, params={"type": "Observation"})
    assert first.status_code == 200
    assert first.text.count("<tr>") == 51  # header + one page of 50
    next_link = re.search(r'href="(/console/\?[^"]+)">Next page', first.text)
    assert next_link
    second = httpx.get(console.base_url + next_link.group(1).replace("&amp;", "&"), headers=auth)
    assert second.text.count("<tr>") == 1 + 5
    who = httpx.get(base, headers=auth, params={"who": "nurse-1", "outcome": "success"})
    assert who.text.count("nurse-1") >= 18
    assert "nurse-2" not in who.text
    glass = httpx.get(base, headers=auth, params={"break_glass": "yes", "patient": PATIENT_A})
    assert "doctor-1" in glass.text
    assert "doctor-2" not in glass.text
    assert REASON not in glass.text  # reasons only in the review queue
    denied = httpx.get(base, headers=auth, params={"outcome": "denied", "from": "2020-01-01",
                                                    "to": "2099-01-01T00:00"})  # fmt: skip
    assert "intruder" in denied.text
    injected = httpx.get(base, headers=auth, params={"who": "x' OR '1'='1' --"})
    assert injected.status_code == 200
    assert injected.text.count("<tr>") == 1  # a value, never SQL
    views = records(module_database, "subject = 'auditor-1' AND content LIKE '%trail search%'")
    assert len(views) >= 6


@pytest.mark.parametrize(("params", "message"), [
    ({"from": "yesterday"}, "from: expected a date"),
    ({"to": "2026-13-45"}, "to: expected a date"),
    ({"from": "1900-01-01"}, "from: must be between 2000 and 2099"),
    ({"from": "2026-02-01", "to": "2026-01-01"}, "from: must be before to"),
    ({"outcome": "maybe"}, "outcome: expected one of"),
    ({"patient": "Jane Doe"}, "patient: expected a patient id"),
    ({"type": "<script>"}, "type: expected a resource type"),
    ({"who": "a\x00b"}, "who: at most 256 printable characters"),
    ({"who": "x" * 300}, "who: at most 256"),
    ({"cursor": "!!!"}, "cursor: malformed"),
    ({"sql": "1"}, "unknown filter"),
])  # fmt: skip
def test_malformed_filters_are_a_clear_400_page(console: Service, params: dict[str, str],
                                                message: str) -> None:  # fmt: skip
    response = httpx.get(console.base_url + "/console/", headers=bearer(AUDITOR), params=params)
    assert response.status_code == 400
    assert message in response.text
    assert "Traceback" not in response.text
    assert "<script>" not in response.text
    assert response.headers["cache-control"] == "no-store"


def test_login_sets_a_strict_short_session_and_forms_need_csrf(
    console: Service, module_database: Database
) -> None:
    response = httpx.post(f"{console.base_url}/console/login", data={"token": AUDITOR})
    cookie = response.headers["set-cookie"]
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/console", "Max-Age=900"):
        assert attribute.lower() in cookie.lower(), attribute
    session = {"Cookie": f"hs_console={response.cookies['hs_console']}"}
    queue = httpx.get(f"{console.base_url}/console/break-glass", headers=session)
    assert queue.status_code == 200
    rid = re.search(r'action="/console/break-glass/(\d+-\d+)/review"', queue.text)
    assert rid
    url = f"{console.base_url}/console/break-glass/{rid.group(1)}/review"
    forged = httpx.post(url, headers=session, data={"note": "looks fine", "csrf": "forged"})
    assert forged.status_code == 403
    assert "CSRF" in forged.text
    missing = httpx.post(url, headers=session, data={"note": "looks fine"})
    assert missing.status_code == 403
    tampered = {"Cookie": "hs_console=" + response.cookies["hs_console"][:-2] + "xx"}
    assert httpx.get(f"{console.base_url}/console/", headers=tampered).status_code == 303
    assert (
        httpx.post(f"{console.base_url}/console/login", data={"token": "nope"}).status_code == 401
    )
    assert records(module_database, "interaction = 'login' AND subject = 'auditor-1'")


def test_expired_session_goes_back_to_login(console: Service) -> None:
    from tests.security.conftest import make_state

    from healthstack.console.session import new_cookie

    state = make_state("postgresql://unused")
    old = new_cookie(state, AUDITOR, now=0)
    response = httpx.get(f"{console.base_url}/console/", headers={"Cookie": f"hs_console={old}"})
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?reason=expired"
    login_page = httpx.get(f"{console.base_url}{response.headers['location']}")
    assert "session has expired" in login_page.text


def test_break_glass_review_is_sealed_audited_and_final(
    console: Service, module_database: Database
) -> None:
    cookie = login(console.base_url)
    session = {"Cookie": f"hs_console={cookie}"}
    queue = httpx.get(f"{console.base_url}/console/break-glass", headers=session)
    assert "cardiac arrest, records needed now" in queue.text  # decrypted for the auditor
    item = re.search(r'action="/console/break-glass/(\d+-\d+)/review"', queue.text)
    assert item
    url = f"{console.base_url}/console/break-glass/{item.group(1)}/review"
    form = {
        "note": "confirmed with the ward: Mrs Example was admitted",
        "csrf": csrf_in(queue.text),
    }
    done = httpx.post(url, headers=session, data=form)
    assert done.status_code == 303
    after = httpx.get(f"{console.base_url}/console/break-glass", headers=session)
    assert f"/console/break-glass/{item.group(1)}/review" not in after.text
    assert "Mrs Example" in after.text  # the note, decrypted, in the reviewed list
    replay = httpx.post(url, headers=session, data=form)
    assert replay.status_code == 409
    with psycopg.connect(module_database.owner_url) as conn:
        note = conn.execute("SELECT note FROM audit_review").fetchone()
    assert note is not None
    assert b"Mrs Example" not in bytes(note[0])  # sealed at rest
    assert records(module_database, f"interaction = 'review' AND resource_id = '{item.group(1)}'")
    unknown = httpx.post(f"{console.base_url}/console/break-glass/1-999999/review",
                         headers=bearer(AUDITOR), data={"note": "x"})  # fmt: skip
    assert unknown.status_code == 404


def test_accounting_of_disclosures_html_and_csv(
    console: Service, module_database: Database
) -> None:
    base, auth = f"{console.base_url}/console/disclosures", bearer(AUDITOR)
    page = httpx.get(base, headers=auth, params={"patient": PATIENT_A})
    assert page.status_code == 200
    assert "bulk-export" in page.text
    assert "ai-summary" in page.text
    assert REASON in page.text  # the break-glass read of patient A, with its reason
    assert "e-2" not in page.text  # patient B's export
    csv_response = httpx.get(base, headers=auth, params={"patient": PATIENT_A, "format": "csv"})
    assert csv_response.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_response.headers["content-disposition"]
    lines = csv_response.text.splitlines()
    assert lines[0] == "date_utc,kind,recipient,client,description,purpose,record"
    assert len(lines) == 4
    assert ",'{" not in csv_response.text  # JSON descriptions start with {, not a formula
    pdf = httpx.get(base, headers=auth, params={"patient": PATIENT_A, "format": "pdf"})
    assert pdf.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "bulk-export" in text
    assert "ai-summary" in text
    assert REASON in text
    assert "e-2" not in text
    none = httpx.get(base, headers=auth, params={"patient": "00000000-0000-4000-8000-0000000000ff"})
    assert "No disclosures are recorded" in none.text
    bad = httpx.get(base, headers=auth, params={"patient": "Jane Doe"})
    assert bad.status_code == 400
    bad_format = httpx.get(base, headers=auth, params={"patient": PATIENT_A, "format": "xls"})
    assert bad_format.status_code == 400
    assert records(module_database, "content LIKE '%accounting of disclosures (csv)%'")


def _luminance(colour: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(fg: str, bg: str) -> float:
    high, low = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_console_colours_meet_wcag_aa() -> None:
    from healthstack.compliance import report

    for name, (fg, bg) in pages.COLOURS.items():
        assert contrast(fg, bg) >= 4.5, name
        assert fg in pages.STYLE
    for colour in re.findall(r"color:(#[0-9a-f]{6})", report.STYLE):
        assert contrast(colour, "#ffffff") >= 4.5, colour


def test_status_compares_every_chain_head_with_its_last_record(
    console: Service, module_database: Database
) -> None:
    url, auth = f"{console.base_url}/console/status", bearer(AUDITOR)
    page = httpx.get(url, headers=auth)
    assert page.status_code == 200
    assert "64 of 64 chain heads match their last record" in page.text
    assert "audit verify --anchor" in page.text  # says what it does not check
    with psycopg.connect(module_database.owner_url, autocommit=True) as conn:
        chain, head = conn.execute("SELECT chain_id, head FROM audit_chain WHERE seq > 0 "
                                   "ORDER BY chain_id LIMIT 1").fetchone() or (0, b"")  # fmt: skip
        conn.execute("SET session_replication_role = replica")  # a rogue superuser
        conn.execute("UPDATE audit_chain SET head = %s WHERE chain_id = %s", (b"x" * 32, chain))
        try:
            tampered = httpx.get(url, headers=auth).text
        finally:
            conn.execute("UPDATE audit_chain SET head = %s WHERE chain_id = %s", (head, chain))
    assert "63 of 64 chain heads match" in tampered
    assert "does not look intact" in tampered
    assert records(module_database, "content LIKE '%console: chain status%'")


def test_a_flood_of_bad_logins_is_bounded_in_the_trail_then_refused(
    console: Service, module_database: Database
) -> None:
    # Last in this module: the address stays throttled for the rest of the window.
    statuses = [httpx.post(f"{console.base_url}/console/login", data={"token": f"bad-{i}"}).status_code
                for i in range(40)]  # fmt: skip
    assert statuses[0] == 401
    assert statuses[-1] == 429
    rows = records(module_database, "interaction = 'login' AND content LIKE '%console: %' "
                   "AND outcome = 'unauthenticated'")  # fmt: skip
    assert len(rows) <= 6  # the first few one by one; the rest counted into an aggregate
    assert httpx.get(f"{console.base_url}/console/", headers=bearer(AUDITOR)).status_code == 200
