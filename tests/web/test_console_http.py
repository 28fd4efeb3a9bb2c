"""The console's guarantees over plain HTTP: sign-in, sessions, CSRF, origins, headers, and what each role sees."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import PASSWORD, Console


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "the page has no form with a CSRF field"
    return found.group(1)


_opened: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Each test's signed-in clients are closed when it ends, their connections with them."""
    yield
    while _opened:
        _opened.pop().close()


def signed_in(console: Console, name: str, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=console.url, timeout=10.0)
    _opened.append(client)
    login = client.get("/login")
    response = client.post(
        "/login", data={"csrf": _csrf(login.text), "name": name, "password": password, "next": "/inbox"}
    )
    assert response.status_code == 303 and response.headers["location"] == "/inbox", response.text
    return client


def test_pages_need_a_session_and_say_where_to_sign_in(console: Console) -> None:
    with httpx.Client(base_url=console.url) as client:
        response = client.get("/runs?status=failed")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Fruns%3Fstatus%3Dfailed"
        assert client.get("/", follow_redirects=False).headers["location"] == "/login"
        # An API token is not a console session, and console routes are not in the API's description.
        assert client.get("/inbox", headers={"Authorization": f"Bearer {console.tokens['ada']}"}).status_code == 303
        paths = client.get("/openapi.json").json()["paths"]
        assert not any(p in paths for p in ("/inbox", "/login", "/runs", "/tasks/{task_id}/decide"))


def test_a_session_cookie_is_http_only_strict_and_pages_carry_security_headers(console: Console) -> None:
    client = httpx.Client(base_url=console.url)
    _opened.append(client)
    login = client.get("/login")
    response = client.post("/login", data={"csrf": _csrf(login.text), "name": "fiona", "password": PASSWORD})
    cookie = response.headers["set-cookie"]
    assert "opsrail_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = client.get("/inbox")
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"


def test_sign_in_refuses_a_form_without_its_csrf_cookie(console: Console) -> None:
    with httpx.Client(base_url=console.url) as client:
        response = client.post("/login", data={"csrf": "made-up", "name": "fiona", "password": PASSWORD})
        assert response.status_code == 403
        assert "security token is missing or stale" in response.text
        assert "opsrail_session" not in response.headers.get("set-cookie", "")


def test_forms_without_the_csrf_field_or_from_another_site_are_refused(console: Console) -> None:
    run_id = console.start_credit("olive", 1500.0, account="hooli")
    task = console.task_of(run_id)
    client = signed_in(console, "fiona")
    page = client.get(f"/tasks/{task['id']}")
    token = _csrf(page.text)
    missing = client.post(f"/tasks/{task['id']}/decide", data={"decision": "approve"})
    assert missing.status_code == 403 and "security token" in missing.text
    wrong = client.post(f"/tasks/{task['id']}/decide", data={"decision": "approve", "csrf": token[::-1]})
    assert wrong.status_code == 403
    foreign = client.post(
        f"/tasks/{task['id']}/decide",
        data={"decision": "approve", "csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403 and "another site" in foreign.text
    with console.api("ada") as api:
        assert api.get(f"/v1/tasks/{task['id']}").json()["status"] == "open"
    done = client.post(f"/tasks/{task['id']}/decide", data={"decision": "approve", "csrf": token})
    assert done.status_code == 303
    with console.api("ada") as api:
        assert api.get(f"/v1/tasks/{task['id']}").json()["status"] == "closed"


def test_signing_out_ends_the_session_on_the_server(console: Console) -> None:
    client = signed_in(console, "fiona")
    stolen = client.cookies["opsrail_session"]
    page = client.get("/inbox")
    assert client.post("/logout", data={"csrf": _csrf(page.text)}).status_code == 303
    with httpx.Client(base_url=console.url, cookies={"opsrail_session": stolen}) as replay:
        assert replay.get("/inbox").status_code == 303


def test_a_disabled_person_is_signed_out_at_once(console: Console) -> None:
    with console.api("ada") as api:
        assert api.put("/v1/users/dora", json={"roles": ["approver"]}).status_code in (200, 201)
    from opsrail.settings import Settings
    from opsrail.wiring import build

    container = build(Settings(home=console.server.env["OPSRAIL_HOME"]))
    container.sessions.set_password("dora", PASSWORD, "tests")
    client = signed_in(console, "dora")
    assert client.get("/inbox").status_code == 200
    container.directory.disable("dora", "tests")
    container.close()
    assert client.get("/inbox").status_code == 303


@pytest.mark.parametrize(
    ("name", "path", "status"),
    [
        ("fiona", "/audit", 403),
        ("aude", "/audit", 200),
        ("olive", "/playbooks", 200),
        ("aude", "/kpis", 200),
        ("olive", "/runs?region=EU&sla=breached", 200),
        ("olive", "/runs?status=exploded", 400),
        ("olive", "/runs/run_does_not_exist", 404),
        ("olive", "/tasks/task_does_not_exist", 404),
        ("aude", "/kpis?by=country", 400),  # hand-edited addresses are refused on a page, not a 500
        ("olive", "/runs?playbook=%00", 400),
        ("aude", "/kpis?period=1y", 400),
        ("aude", "/insights", 200),
        ("olive", "/insights?window=1y", 400),
        ("olive", "/insights?by=country", 400),
    ],
)
def test_each_page_answers_as_the_policies_and_the_input_say(
    console: Console, name: str, path: str, status: int
) -> None:
    client = signed_in(console, name)
    response = client.get(path)
    client.close()
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    if status == 400:
        assert "Invalid input" in response.text and "Something went wrong" not in response.text


def test_a_browser_at_an_address_that_is_no_page_gets_a_page_and_the_api_keeps_problems(console: Console) -> None:
    client = signed_in(console, "olive")
    html = {"Accept": "text/html,application/xhtml+xml"}
    missing = client.get("/runz", headers=html)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "the console has no page at this address" in missing.text
    assert "default-src 'self'" in missing.headers["content-security-policy"]
    wrong_method = client.delete("/inbox", headers=html)
    assert wrong_method.status_code == 405 and wrong_method.headers["content-type"].startswith("text/html")
    assert "GET" in wrong_method.headers["allow"] and "cannot take a DELETE request" in wrong_method.text
    # Scripts, and the API's own addresses, keep their problem+json whatever they accept.
    assert client.get("/runz").headers["content-type"] == "application/problem+json"
    assert client.get("/v1/nope", headers=html).headers["content-type"] == "application/problem+json"
    assert client.get("/static/nope.css", headers=html).headers["content-type"] == "application/problem+json"


def test_a_wrong_password_is_throttled_after_five_tries(console: Console) -> None:
    with httpx.Client(base_url=console.url) as client:
        codes = []
        for _ in range(6):
            login = client.get("/login")
            codes.append(
                client.post(
                    "/login", data={"csrf": _csrf(login.text), "name": "mallory", "password": "wrong-guess-x"}
                ).status_code
            )
    assert codes[:5] == [401] * 5 and codes[5] == 429


def test_an_operator_pauses_and_resumes_a_run_and_a_controller_may_not(console: Console) -> None:
    run_id = console.start_credit("olive", 900.0, account="stark")
    console.task_of(run_id)
    operator = signed_in(console, "olive")
    page = operator.get(f"/runs/{run_id}")
    assert 'value="pause"' in page.text
    paused = operator.post(f"/runs/{run_id}/control", data={"csrf": _csrf(page.text), "action": "pause"})
    assert paused.status_code == 303 and paused.headers["location"] == f"/runs/{run_id}?done=pause"
    with console.api("ada") as api:
        assert api.get(f"/v1/runs/{run_id}").json()["status"] == "paused"
    page = operator.get(f"/runs/{run_id}?done=pause")
    assert "Run paused." in page.text and 'value="resume"' in page.text
    operator.post(f"/runs/{run_id}/control", data={"csrf": _csrf(page.text), "action": "resume"})
    with console.api("ada") as api:
        assert api.get(f"/v1/runs/{run_id}").json()["status"] == "running"
    controller = signed_in(console, "fiona")
    page = controller.get(f"/runs/{run_id}")
    assert 'value="pause"' not in page.text
    refused = controller.post(f"/runs/{run_id}/control", data={"csrf": _csrf(page.text), "action": "cancel"})
    assert refused.status_code == 403 and "may not run.control" in refused.text


def test_a_decision_is_overridden_with_a_reason_and_not_without(console: Console) -> None:
    run_id = console.start_credit("olive", 700.0, account="wayne")
    console.task_of(run_id)
    with console.api("ada") as api:
        record = api.get("/v1/decision-records", params={"run_id": run_id}).json()["items"][0]
    client = signed_in(console, "olive")
    page = client.get(f"/decisions/{record['id']}")
    assert page.status_code == 200 and "credit-tier" in page.text and "team-lead" in page.text
    value = '{"approver": ["finance_controller"], "approvals": 1, "hold_days": 0}'
    missing = client.post(f"/decisions/{record['id']}/override", data={"csrf": _csrf(page.text), "value": value})
    assert missing.status_code == 400 and "needs a reason" in missing.text
    not_json = client.post(
        f"/decisions/{record['id']}/override", data={"csrf": _csrf(page.text), "value": "{oops", "reason": "x"}
    )
    assert not_json.status_code == 400 and "not JSON" in not_json.text
    wrong = client.post(
        f"/decisions/{record['id']}/override",
        data={"csrf": _csrf(page.text), "value": '{"approvals": "two"}', "reason": "two people must sign"},
    )
    assert wrong.status_code == 400 and "$.value.approvals" in wrong.text
    assert "two people must sign" in wrong.text and "&#34;approvals&#34;: &#34;two&#34;" in wrong.text  # kept
    done = client.post(
        f"/decisions/{record['id']}/override",
        data={"csrf": _csrf(page.text), "value": value, "reason": "the amount was misread"},
    )
    assert done.status_code == 303
    with console.api("ada") as api:
        settled = api.get(f"/v1/decision-records/{record['id']}").json()
    assert settled["status"] == "overridden" and settled["reviewed_by"] == "olive"
    assert settled["final_outputs"]["approver"] == ["finance_controller"]
    listed = client.get("/decisions?overridden=true")
    assert record["id"] in listed.text


def test_a_rejected_event_shows_on_the_events_page_with_its_reason(console: Console) -> None:
    with console.api("olive") as api:
        rejected = api.post("/v1/events", json={"specversion": "1.0", "id": "x1", "source": "tests"})
    assert rejected.status_code == 400
    client = signed_in(console, "olive")
    page = client.get("/events")
    assert page.status_code == 200
    assert "Dead letters" in page.text and "type" in page.text and 'action="/dead-letters/' in page.text


def test_four_eyes_refusals_are_shown_on_the_task_page(console: Console) -> None:
    run_id = console.start_credit("olive", 9000.0, account="tyrell")
    task = console.task_of(run_id)
    path = f"/tasks/{task['id']}"

    def decide(client: httpx.Client) -> httpx.Response:
        page = client.get(path)
        return client.post(f"{path}/decide", data={"csrf": _csrf(page.text), "decision": "approve"})

    abe, ann, fiona = (signed_in(console, name) for name in ("abe", "ann", "fiona"))
    assert "2 people must approve (four eyes)" in abe.get(path).text
    # It can be given only to those who may decide it: approvers and controllers, not olive, who asked for it.
    offered = re.findall(r'<option value="([^"]+)"', signed_in(console, "ada").get(path).text)
    assert "fiona" in offered and "abe" in offered and "olive" not in offered and "aude" not in offered
    assert decide(abe).status_code == 303
    again = decide(abe)
    assert again.status_code == 409 and "abe has already decided task" in again.text
    missing = decide(ann)
    assert missing.status_code == 409 and "would leave finance_controller without an approver" in missing.text
    assert decide(fiona).status_code == 303
    with console.api("ada") as api:
        assert api.get(f"/v1/tasks/{task['id']}").json()["status"] == "closed"


def test_a_task_can_be_given_to_a_service_account_that_may_decide_it(console: Console) -> None:
    task = console.task_of(console.start_credit("olive", 4000.0, account="initech"))
    path = f"/tasks/{task['id']}"
    admin = signed_in(console, "ada")
    page = admin.get(path)
    people, accounts = page.text.split('<optgroup label="Service accounts (API tokens)">')
    assert '<option value="fiona">' in people and "billing-bot" not in people
    # billing-bot's token has the controller's role; ops-bot's, an operator's, may not decide a credit.
    offered = re.findall(r'<option value="([^"]+)"', accounts.split("</optgroup>")[0])
    assert "billing-bot" in offered and "ops-bot" not in offered
    done = admin.post(f"{path}/reassign", data={"csrf": _csrf(page.text), "to": "billing-bot"})
    assert done.status_code == 303
    with console.api("ada") as api:
        assert api.get(f"/v1/tasks/{task['id']}").json()["assignee"] == "billing-bot"
    assert '<option value="billing-bot" selected>' in admin.get(path).text


def test_the_insights_page_shows_drift_health_conformance_and_a_playbook_s_variants(console: Console) -> None:
    run_id = console.start_credit("olive", 1200.0, account="umbrella")
    console.task_of(run_id)
    client = signed_in(console, "olive")
    page = client.get("/insights", params={"window": "all"})
    assert page.status_code == 200
    for heading in (
        "Drift by region",
        "Automation health",
        "Models in production",
        "Conformance to the pinned playbook version",
    ):
        assert heading in page.text
    assert 'href="/insights?playbook=console-credit' in page.text  # a row per playbook version with runs
    variants = client.get("/insights", params={"window": "all", "playbook": "console-credit", "by": "tier"})
    assert variants.status_code == 200 and "Variants of console-credit" in variants.text
    assert "Drift by tier" in variants.text and "Process map" in variants.text and "▶ start" in variants.text
    assert '<svg class="dag pmap"' in variants.text
    by_path = client.get("/insights", params={"window": "all", "playbook": "console-credit", "order": "playbook"})
    assert by_path.status_code == 200 and '<option value="playbook" selected>' in by_path.text
    assert client.get("/insights", params={"order": "sideways"}).status_code == 400
    unknown = client.get("/insights", params={"window": "all", "playbook": "console-credti"})
    assert unknown.status_code == 200 and "no playbook &#39;console-credti&#39;" in unknown.text


def test_the_insights_page_offers_the_window_s_runs_as_an_event_log(console: Console, tmp_path: Path) -> None:
    import time

    from opsrail.ml import read_event_log

    run_id = console.start_credit("olive", 1200.0, account="umbrella")
    task = console.task_of(run_id)
    with console.api("fiona") as fiona:
        assert fiona.post(f"/v1/tasks/{task['id']}:approve", json={"comment": "ok"}).status_code == 200
        deadline = time.monotonic() + 15
        while fiona.get(f"/v1/runs/{run_id}").json()["status"] != "succeeded":  # only finished runs are exported
            assert time.monotonic() < deadline, "the approved credit did not finish"
            time.sleep(0.1)
    client = signed_in(console, "olive")
    page = client.get("/insights", params={"window": "all", "playbook": "console-credit"})
    assert '<a href="/insights/log?format=xes&amp;window=all&amp;playbook=console-credit" download>XES</a>' in page.text
    for fmt, media, suffix in (
        ("xes", "application/gzip", ".xes.gz"),
        ("csv", "application/gzip", ".csv.gz"),
        ("parquet", "application/vnd.apache.parquet", ".parquet"),
    ):
        answer = client.get("/insights/log", params={"format": fmt, "window": "all", "playbook": "console-credit"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == media
        assert f'filename="opsrail-console-credit-all{suffix}"' in answer.headers["content-disposition"]
        path = tmp_path / f"log{suffix}"
        path.write_bytes(answer.content)
        [case] = [c for c in read_event_log(path).cases if c.case_id == run_id]
        assert case.attributes["case:playbook"] == "console-credit"
    assert client.get("/insights/log", params={"format": "json"}).status_code == 400
    assert client.get("/insights/log", params={"playbook": "console-credti"}).status_code == 404
    # Signed out: to the sign-in page, as every console page.
    assert httpx.get(f"{console.url}/insights/log", follow_redirects=False).status_code == 303


def _publish_on_console(admin: httpx.Client, document: str) -> str:
    """Publish and activate a playbook through the console's form; the address of its page."""
    listing = admin.get("/playbooks")
    published = admin.post("/playbooks", data={"csrf": _csrf(listing.text), "document": document, "activate": "yes"})
    assert published.status_code == 303, published.text
    return str(published.headers["location"])


def test_a_playbook_page_warns_of_steps_naming_what_the_server_cannot_find(console: Console) -> None:
    admin = signed_in(console, "ada")
    document = (
        "id: console-typo\nversion: 1\nsteps:\n  - id: route\n    decide: credit-teir\n"
        "  - id: book\n    needs: [route]\n    action: core.set\n"
    )
    page = admin.get(_publish_on_console(admin, document))
    assert 'role="alert"' in page.text and "A run would fail at these steps" in page.text
    assert "no published table or model named &#39;credit-teir&#39; (did you mean &#39;credit-tier&#39;?)" in page.text
    assert 'role="alert"' not in admin.get("/playbooks/console-credit").text
    # Without "make it the active version", the version is published and the active one stays.
    listing = admin.get("/playbooks")
    staged = document.replace("version: 1", "version: 2").replace("credit-teir", "credit-tier")
    kept = admin.post("/playbooks", data={"csrf": _csrf(listing.text), "document": staged})
    assert kept.status_code == 303, kept.text
    with console.api("ada") as api:
        versions = {
            p["version"]: p["active"] for p in api.get("/v1/playbooks").json()["items"] if p["id"] == "console-typo"
        }
    assert versions == {1: True, 2: False}
    # The page of the staged version rolls it out: a canary share first, then the whole.
    page = admin.get("/playbooks/console-typo?version=2")
    assert "Make v2 the active version" in page.text and "Set the canary" in page.text
    canary = admin.post(
        "/playbooks/console-typo/activate", data={"csrf": _csrf(page.text), "version": "2", "canary": "25"}
    )
    assert canary.status_code == 303 and canary.headers["location"].endswith("version=2&done=canary")
    assert "The canary share is set." in admin.get(canary.headers["location"]).text
    whole = admin.post("/playbooks/console-typo/activate", data={"csrf": _csrf(page.text), "version": "2"})
    assert whole.status_code == 303
    with console.api("ada") as api:
        listed = [p for p in api.get("/v1/playbooks").json()["items"] if p["id"] == "console-typo"]
    assert {p["version"]: p["active"] for p in listed} == {1: False, 2: True}
    bad = admin.post("/playbooks/console-typo/activate", data={"csrf": _csrf(page.text), "version": "9"})
    assert bad.status_code == 404 and "has no version 9" in bad.text
    operator = signed_in(console, "fiona")  # a finance controller may read playbooks, not roll them out
    assert "Set the canary" not in operator.get("/playbooks/console-typo?version=1").text


def test_a_run_is_started_from_its_playbook_page_with_the_input_checked(console: Console) -> None:
    document = (
        "id: console-quote\nversion: 1\ntrigger: {events: [com.opsrail.quote.submitted]}\nsteps:\n"
        "  - id: note\n    action: core.set\n    with: {quote: '${ run.input.id }'}\n"
    )
    _publish_on_console(signed_in(console, "ada"), document)
    operator = signed_in(console, "olive")
    page = operator.get("/playbooks/console-quote")
    assert "Start a run of v1" in page.text
    # The form starts from the trigger kind's required fields.
    assert "&#34;account_id&#34;: &#34;&#34;" in page.text and "&#34;status&#34;: &#34;draft&#34;" in page.text
    refused = operator.post(
        "/playbooks/console-quote/runs", data={"csrf": _csrf(page.text), "version": "1", "input": '{"id": "q-1"}'}
    )
    assert refused.status_code == 400 and "its input must be a canonical quote" in refused.text
    assert "$.input.account_id" in refused.text and "{&#34;id&#34;: &#34;q-1&#34;}" in refused.text  # kept
    quote = '{"id": "q-1", "account_id": "acme", "status": "submitted", "amount": 1200, "currency": "EUR"}'
    started = operator.post(
        "/playbooks/console-quote/runs", data={"csrf": _csrf(page.text), "version": "1", "input": quote}
    )
    assert started.status_code == 303 and started.headers["location"].startswith("/runs/run_")
    forced = operator.post(
        "/playbooks/console-quote/runs",
        data={"csrf": _csrf(page.text), "version": "1", "input": '{"x": 1}', "skip_check": "yes"},
    )
    assert forced.status_code == 303
    not_json = operator.post("/playbooks/console-quote/runs", data={"csrf": _csrf(page.text), "input": "{nope"})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.text
    auditor = signed_in(console, "aude")
    assert "Start a run" not in auditor.get("/playbooks/console-quote").text


def test_decision_tables_are_read_on_the_console(console: Console) -> None:
    controller = signed_in(console, "fiona")
    listing = controller.get("/decisions")
    assert 'href="/decisions/catalog/credit-tier"' in listing.text
    table = controller.get("/decisions/catalog/credit-tier")
    assert table.status_code == 200 and "decision table" in table.text
    assert "Inputs" in table.text and "required" in table.text and "hit policy collect" in table.text
    assert "<code>approver</code> = <code>finance_controller</code>" in table.text
    assert 'href="/decisions?decision=credit-tier"' in table.text
    missing = controller.get("/decisions/catalog/no-such-table")
    assert missing.status_code == 404 and "no decision table or model named &#39;no-such-table&#39;" in missing.text
    assert controller.get("/playbooks/console-credit").text.count('href="/decisions/catalog/credit-tier"') == 1


def test_the_insights_page_scores_open_runs_with_an_event_log_model(console: Console, tmp_path: Path) -> None:
    from opsrail.settings import Settings
    from opsrail.wiring import build

    # A next-activity model of the credit playbook's finished runs, as an export would give them.
    log = tmp_path / "credits.csv"
    rows = ["case:concept:name,case:playbook,concept:name,time:timestamp"]
    for n in range(60):
        day = f"2026-02-{1 + n % 28:02d}"
        rows += [f"c{n},console-credit,tier,{day}T09:00:00+00:00", f"c{n},console-credit,approve,{day}T10:00:00+00:00"]
        rows.append(f"c{n},console-credit,book,{day}T10:05:00+00:00")
    log.write_text("\n".join(rows) + "\n")
    trainer = build(Settings(home=Path(console.server.env["OPSRAIL_HOME"])))
    try:
        trainer.decisions.train_model("next-activity", log, {}, name="credit-next")
    finally:
        trainer.close()
    run_id = console.start_credit("olive", 300.0, account="initech")
    console.task_of(run_id)  # the tier step ended; the run waits for its approval
    client = signed_in(console, "olive")
    page = client.get("/insights", params={"window": "all"})
    assert '<select name="risk">' in page.text and "<option>credit-next</option>" in page.text
    scored = client.get("/insights", params={"window": "all", "risk": "credit-next", "playbook": "console-credit"})
    assert scored.status_code == 200
    assert "Open runs at risk (console-credit): credit-next v1, next-activity" in scored.text
    row = scored.text.split(f'<a href="/runs/{run_id}">')[1].split("</tr>")[0]
    assert "approve (" in row and "console-credit v1" in row and "<td>tier</td>" in row
    why = row.split("<td>tier</td>")[1]
    assert "Mostly because of" in scored.text and "tier" in why, why  # the last step is what decides the next
    wrong = client.get("/insights", params={"window": "all", "risk": "credit-tier"})
    assert wrong.status_code == 200 and "credit-tier is a decision table" in wrong.text
