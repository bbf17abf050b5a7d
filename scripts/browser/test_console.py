"""The console in a real browser: Debian's Chromium driven by Playwright against
`funnel serve --demo` on an ephemeral port (scripts/browser-test runs it).

Every page is checked for console errors, for requests to any other host (intercepted and refused)
and, at phone width, for sideways scrolling. Each step leaves a screenshot under
target/browser-screenshots/.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from playwright.sync_api import Page

from conftest import ROOT, SHOTS
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


class Server:
    """`funnel serve --demo` with `leads` demo leads on `listen`, with settings from `env`."""

    def __init__(self, funnel: str, workdir: pathlib.Path, listen: str = "127.0.0.1:0",
                 env: dict[str, str] | None = None, leads: int = 200):
        self.funnel = funnel
        self.workdir = workdir
        self.store = f"sqlite:{workdir / 'funnel.db'}"
        log = open(workdir / "serve.log", "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [funnel, "--store", self.store, "serve", "--demo", "--demo-leads", str(leads),
             "--listen", listen],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
            cwd=workdir, start_new_session=True, env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 300
        assert self.proc.stdout is not None
        self.base = ""
        for line in self.proc.stdout:
            m = re.match(r"funnel serve listening on (http://\S+)", line)
            if m:
                self.base = m.group(1)
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()
                break
            if time.monotonic() > deadline:
                break
        if not self.base:
            self.stop()
            raise RuntimeError(f"funnel serve --demo did not start; see {workdir / 'serve.log'}")
        tokens = json.loads((workdir / "funnel.demo-tokens.json").read_text(encoding="utf-8"))
        self.people = {t["role"]: t for t in tokens["tokens"]}
        self.host = urllib.parse.urlsplit(self.base).netloc

    def token(self, role: str) -> str:
        return self.people[role]["token"]

    def api(self, method: str, path: str, role: str | None = None, token: str | None = None,
            body: dict | None = None) -> dict:
        req = urllib.request.Request(
            self.base + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token or self.token(role)}",
                     "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read().decode() or "null")
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{method} {path}: {e.code} {e.read().decode()}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="session")
def server():
    funnel = os.environ.get("FUNNEL_BIN", str(ROOT / "target" / "debug" / "funnel"))
    with tempfile.TemporaryDirectory(prefix="funnel-browser-") as d:
        s = Server(funnel, pathlib.Path(d))
        try:
            yield s
        finally:
            s.stop()


class Visit:
    """A signed-in browser context for one person, watching what every page does."""

    def __init__(self, browser, server: Server, role: str | None, viewport: dict, name: str,
                 token: str | None = None):
        self.server = server
        self.name = name
        self.viewport = viewport
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.ctx = browser.new_context(viewport=viewport, locale="zh-CN")
        self.ctx.route("**/*", self._route)
        self.page: Page = self.ctx.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.step = 0
        if role or token:
            self.sign_in(token or server.token(role))

    def sign_in(self, token: str) -> None:
        """Signs in as a person would: a page sends to the sign-in form, which sends back."""
        self.go("/console/inbox")
        assert "/sign-in" in self.page.url, self.page.url
        self.page.get_by_text("使用 API 令牌登录").click()
        self.page.fill("#token", token)
        with self.page.expect_navigation(url=re.compile(r"/console/inbox$")):
            self.page.get_by_role("button", name="登录").click()
        self.settled()

    def _route(self, route):
        host = urllib.parse.urlsplit(route.request.url).netloc
        if host == self.server.host:
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()

    def go(self, path: str) -> Page:
        self.page.goto(self.server.base + path)
        self.settled()
        return self.page

    def settled(self) -> None:
        self.page.wait_for_load_state("networkidle")
        self.check()

    def check(self) -> None:
        widths = self.page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"{self.page.url} scrolls sideways: {widths}"
        assert not self.errors, f"console errors on {self.page.url}: {self.errors}"
        assert not self.foreign, f"requests to other hosts: {self.foreign}"

    def shot(self, what: str) -> None:
        self.step += 1
        w = self.viewport["width"]
        self.page.screenshot(path=str(SHOTS / f"{self.name}-{self.step:02d}-{what}-{w}.png"),
                             full_page=True)

    def close(self) -> None:
        self.check()
        self.ctx.close()


def other_writing(text: str) -> str:
    """The same name written differently: ASCII letters and digits in full width, a space between
    every character."""
    out = []
    for c in text:
        if "!" <= c <= "~":
            c = chr(ord(c) + 0xFEE0)
        out.append(c)
    return " ".join(out)


def a_lead_of(server: Server, role: str) -> dict:
    """A lead the role may read, with a customer name of at least two characters."""
    found = server.api("GET", "/leads?office=SH&limit=50", role)
    for lead in found["leads"]:
        if len(lead["customer"]) >= 2:
            return lead
    raise AssertionError("no lead to look for")


@pytest.mark.parametrize("role", ["sales_engineer", "office_manager", "sales_department", "auditor"])
def test_every_role_finds_a_lead_written_differently_and_reads_its_timeline(server, browser, role):
    lead = a_lead_of(server, role)
    for viewport in (DESKTOP, PHONE):
        v = Visit(browser, server, role, viewport, f"find-{role}")
        page = v.go("/console/inbox")
        v.shot("inbox")
        page.get_by_role("link", name=re.compile("^(线索|Leads)$")).click()
        v.settled()
        page.fill("#lead-search", other_writing(lead["customer"]))
        page.get_by_role("button", name=re.compile("查找")).click()
        v.settled()
        v.shot("search")
        link = page.locator(f'a[href="/console/leads/{lead["id"]}"]')
        assert link.count() == 1, page.content()
        link.click()
        v.settled()
        v.shot("record")
        assert lead["customer"] in page.locator("#customer").inner_text()
        timeline = page.locator("#timeline li")
        assert timeline.count() >= 1
        assert "报备" in page.locator("#timeline").inner_text()
        # Form 1 opens with the session, as a printable page.
        form = page.locator("p.forms a").first.get_attribute("href")
        answer = page.request.get(server.base + form)
        assert answer.status == 200, (form, answer.status, answer.text()[:200])
        assert answer.headers["content-type"].startswith("text/html"), answer.headers
        if viewport is PHONE:
            # Signing out ends the session: the next page asks to sign in again.
            with page.expect_navigation(url=re.compile(r"/sign-in")):
                page.locator("#sign-out").click()
            v.go("/console/inbox")
            assert "/sign-in" in page.url, page.url
        v.close()


def test_an_engineer_logs_a_visit_on_a_phone(server, browser):
    me = server.people["sales_engineer"]
    v = Visit(browser, server, "sales_engineer", PHONE, "visit")
    page = v.go("/console/leads?" + urllib.parse.urlencode({"owner": me["name"]}))
    v.shot("my-leads")
    page.locator("table.leads tbody a").first.click()
    v.settled()
    before = page.locator("#timeline li").count()
    page.get_by_text("记录拜访").click()
    page.locator('input[name="purposes[]"]').first.check()
    page.fill('textarea[name="summary"]', "介绍可视对讲新品，客户约下周看样板间")
    page.fill('input[name="next_step"]', "下周带样品拜访")
    v.shot("visit-form")
    page.get_by_role("button", name="提交").click()
    page.wait_for_selector("#visit-result .accepted, #visit-result .refusal")
    v.shot("visit-result")
    assert page.locator("#visit-result .accepted").count() == 1, page.locator("#visit-result").inner_text()
    v.check()
    deadline = time.monotonic() + 10
    while True:
        page.reload()
        v.settled()
        if page.locator("#timeline li").count() > before or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    v.shot("timeline")
    assert page.locator("#timeline li").count() == before + 1
    assert "拜访记录" in page.locator("#timeline li").first.inner_text()
    v.close()


def test_an_engineer_is_warned_of_a_customer_on_record_before_registering(server, browser):
    lead = a_lead_of(server, "sales_engineer")
    v = Visit(browser, server, "sales_engineer", PHONE, "register")
    page = v.go("/console/leads/new")
    page.locator('input[name="customer_name"]').press_sequentially(other_writing(lead["customer"]))
    page.wait_for_selector("#similar .refusal")
    v.shot("duplicate-warning")
    assert f'/console/leads/{lead["id"]}' in page.locator("#similar").inner_html()
    v.close()


def wait_for_task(v: Visit, text: str) -> None:
    """Reloads the inbox until a task mentioning `text` is there (the sagas react within seconds)."""
    deadline = time.monotonic() + 30
    while True:
        v.go("/console/inbox")
        if v.page.locator("article.task", has_text=text).count() > 0:
            return
        assert time.monotonic() < deadline, f"no task about {text} in {v.name}'s inbox"
        time.sleep(0.5)


def test_a_manager_decides_a_conflict_and_approvals_reach_the_next_role(server, browser):
    # A second engineer of the office, with a token issued at the command line of the server.
    me = server.people["sales_engineer"]
    staff = server.api("GET", "/staff?office=SH", "sales_department")["staff"]
    other = next(s for s in staff if s["role"] == "sales_engineer" and s["id"] != me["staff_id"]
                 and s["active"])
    out = subprocess.run([server.funnel, "--store", server.store, "staff", "token", other["id"]],
                         capture_output=True, text=True, check=True, cwd=server.workdir).stdout
    issued = {"token": re.search(r"^token:\s+(\S+)", out, re.M).group(1)}
    office = server.api("GET", "/offices", "sales_department")
    sh = next(o["id"] for o in office["offices"] if o["code"] == "SH")
    customer = f"浏览器测试置业{int(time.time()) % 100000}"
    registration = {
        "customer_name": customer, "project_name": "一期", "industry": "real_estate",
        "purchase_mode": "independent", "channel": "building_sweep", "office": sh,
        "location": "上海市", "contact": {"name": "李经理", "phone": "13800000000"},
        "need": "楼宇对讲",
    }
    lead = server.api("POST", "/leads", "sales_engineer", body=registration)["id"]
    server.api("POST", "/leads", token=issued["token"], body=registration)

    manager = Visit(browser, server, "office_manager", PHONE, "conflict")
    wait_for_task(manager, customer)
    task = manager.page.locator("article.task", has_text=customer).filter(has_text="裁定")
    manager.shot("inbox")
    task.locator('select[name="winner"]').select_option(index=1)
    task.locator('input[value="registered_first"]').check()
    task.get_by_role("button", name="裁定").click()
    task.locator(".result .accepted, .result .refusal").wait_for()
    manager.shot("decided")
    assert task.locator(".result .accepted").count() == 1, task.locator(".result").inner_text()
    manager.check()

    # The manager asks to move the lead to the other engineer; the sales department approves from
    # its inbox, and then the owner sees their own task.
    server.api("POST", f"/leads/{lead}/commands/request_reassignment", "office_manager",
               body={"to": other["id"], "evidence": "客户指定由该工程师对接"})
    dept = Visit(browser, server, "sales_department", DESKTOP, "reassignment")
    wait_for_task(dept, customer)
    task = dept.page.locator("article.task", has_text=customer)
    assert other["name"] in task.inner_text()
    dept.shot("inbox")
    task.get_by_role("button", name="同意").click()
    task.locator(".result .accepted, .result .refusal").wait_for()
    dept.shot("approved")
    assert task.locator(".result .accepted").count() == 1, task.locator(".result").inner_text()
    engineer = Visit(browser, server, "sales_engineer", PHONE, "reassignment-owner")
    wait_for_task(engineer, customer)
    engineer.shot("owner-task")
    for v in (manager, dept, engineer):
        v.close()


def test_the_date_picker_shows_what_funnel_pipeline_as_of_shows(server, browser):
    # Two months before the demo history ends (it ends yesterday, whatever today is).
    day = (datetime.date.today() - datetime.timedelta(days=60)).isoformat()
    v = Visit(browser, server, "sales_department", DESKTOP, "analysis")
    page = v.go("/console/analysis")
    v.shot("now")
    # Both filters submit themselves when changed.
    with page.expect_navigation():
        page.select_option('select[name="office"]', "SH")
    v.settled()
    # As a person picks a day: the value changes, then `change` fires once.
    page.eval_on_selector("#as-of", "(el, day) => { el.value = day; }", day)
    with page.expect_navigation():
        page.locator("#as-of").dispatch_event("change")
    assert f"as_of={day}" in page.url and "office=SH" in page.url, page.url
    v.settled()
    v.shot("as-of")
    shown = {}
    for row in page.locator("section.office table.stages tbody tr").all():
        shown[row.get_attribute("data-stage")] = int(row.locator("a[data-count]").inner_text())
    cli = subprocess.run(
        [server.funnel, "--store", server.store, "pipeline", "--office", "SH", "--as-of", day,
         "--json"], capture_output=True, text=True, check=True, cwd=server.workdir)
    report = json.loads(cli.stdout)["offices"][0]
    expected = {stage: bucket["leads"] for stage, bucket in report["by_stage"].items()}
    assert expected, "the demo history has leads on that day"
    assert shown == expected, (shown, expected)
    # The phone shows the same page without sideways scrolling.
    phone = Visit(browser, server, "sales_department", PHONE, "analysis")
    phone.go(f"/console/analysis?office=SH&as_of={day}")
    phone.shot("as-of")
    phone.close()
    v.close()


def submit(page: Page, button, box: str) -> tuple[str, str]:
    """Presses a form's button and waits for the answer in its result area (emptied first):
    ("accepted" or "refusal", its text)."""
    page.eval_on_selector(box, "e => { e.innerHTML = ''; }")
    button.click()
    page.wait_for_selector(f"{box} .accepted, {box} .refusal")
    kind = "accepted" if page.locator(f"{box} .accepted").count() else "refusal"
    return kind, page.locator(box).inner_text()


def reload_until(v: Visit, done, what: str) -> None:
    """Reloads the page until `done(page)` (the read models catch up within moments)."""
    deadline = time.monotonic() + 15
    while True:
        v.page.reload()
        v.settled()
        if done(v.page):
            return
        assert time.monotonic() < deadline, f"{what} did not appear on {v.page.url}"
        time.sleep(0.3)


def a_lead_to_declare(server: Server) -> dict:
    """An ordinary-stage lead of the demo engineer whose valid-info checklist misses at least two
    items, all of them recorded with evidence or by an insider (none from the registration)."""
    me = server.people["sales_engineer"]
    found = server.api("GET", "/leads?" + urllib.parse.urlencode(
        {"owner": me["name"], "stage": "ordinary", "limit": 100}), "sales_engineer")
    for lead in found["leads"]:
        record = server.api("GET", f"/leads/{lead['id']}", "sales_engineer")
        valid = next(c for c in record["checklist"] if c["stage"] == "valid")
        unmet = [i["criterion"] for i in valid["items"] if not i["met"]]
        recordable = [c for c in unmet if c != "insider_developed"]
        if len(recordable) >= 2 and all(
                c in recordable or c == "insider_developed" for c in unmet):
            return {"id": lead["id"], "customer": record["fields"]["customer_name"],
                    "unmet": unmet, "labels": {i["criterion"]: i["label_zh"] for i in valid["items"]}}
    raise AssertionError("no ordinary lead to declare")


def test_an_engineer_records_key_persons_and_criteria_and_declares_on_a_phone(server, browser):
    lead = a_lead_to_declare(server)
    v = Visit(browser, server, "sales_engineer", PHONE, "declare")
    page = v.go(f"/console/leads/{lead['id']}")
    v.shot("record")

    # Declaring too early: refused, with the message and the missing items in Chinese.
    page.locator("#declare summary").click()
    kind, text = submit(page, page.locator("#declare button"), "#declare-result")
    v.shot("declare-refused")
    assert kind == "refusal", text
    assert "尚未满足" in text, text
    for c in lead["unmet"]:
        assert lead["labels"][c] in text, (c, text)
    v.check()

    # A key person with only one of the two levels: refused before anything is written.
    page.locator("#key-person summary").click()
    form = page.locator("#key-person form")
    form.locator('input[name="name"]').fill("赵工")
    form.locator('input[name="title"]').fill("弱电工程师")
    form.locator('select[name="role"]').select_option("influencer")
    form.locator('select[name="company"]').select_option("b")
    kind, text = submit(page, form.locator("button"), "#key-person-result")
    v.shot("key-person-refused")
    assert kind == "refusal" and "须同时填写" in text, text
    # With both levels it is recorded, and the record shows the person and the levels.
    form.locator('select[name="personal"]').select_option("b")
    kind, text = submit(page, form.locator("button"), "#key-person-result")
    v.shot("key-person-recorded")
    assert kind == "accepted", text
    reload_until(v, lambda p: "赵工" in p.locator("main").inner_text(), "the key person")
    assert "B / B" in page.locator("dl.fields").inner_text()

    # A criterion with its evidence; the same one again is refused as already met.
    first = next(c for c in lead["unmet"] if c != "insider_developed")
    page.locator("#criterion summary").click()
    assert page.locator('#criterion select[name="criterion"]').input_value() == first
    page.fill('#criterion textarea[name="evidence"]', "已与开发商工程部核实，见名片及会议纪要")
    v.shot("criterion-form")
    kind, text = submit(page, page.locator("#criterion button"), "#criterion-result")
    assert kind == "accepted", text
    reload_until(v, lambda p: p.locator("#criterion select option", has_text="已满足").count() > 0,
                 "the met criterion")
    page.locator("#criterion summary").click()
    page.locator('#criterion select[name="criterion"]').select_option(first)
    page.fill('#criterion textarea[name="evidence"]', "再次提交")
    kind, text = submit(page, page.locator("#criterion button"), "#criterion-result")
    v.shot("criterion-refused")
    assert kind == "refusal" and "已满足" in text, text
    v.check()

    # The rest of the checklist through the API (the insider is the key person just recorded);
    # then the declaration is accepted and the manager reviews it from the inbox.
    record = server.api("GET", f"/leads/{lead['id']}", "sales_engineer")
    person = next(k for k in record["key_persons"] if k["name"] == "赵工")
    for c in lead["unmet"]:
        if c == "insider_developed":
            server.api("POST", f"/leads/{lead['id']}/commands/mark_insider", "sales_engineer",
                       body={"key_person_id": person["key_person_id"]})
        elif c != first:
            server.api("POST", f"/leads/{lead['id']}/commands/record_criterion", "sales_engineer",
                       body={"criterion": c, "evidence": "浏览器测试补录"})
    reload_until(v, lambda p: "缺 0" in p.locator("#checklist-valid summary").inner_text(),
                 "the met valid-info checklist")
    page.locator("#declare summary").click()
    page.fill('#declare textarea[name="note"]', "条件已全部满足")
    kind, text = submit(page, page.locator("#declare button"), "#declare-result")
    v.shot("declared")
    assert kind == "accepted", text
    v.close()

    manager = Visit(browser, server, "office_manager", DESKTOP, "declaration-review")
    about = f'article.task:has(a[href="/console/leads/{lead["id"]}"])'
    deadline = time.monotonic() + 30
    while manager.go("/console/inbox").locator(about, has_text="审核申报").count() == 0:
        assert time.monotonic() < deadline, "no declaration to review in the manager's inbox"
        time.sleep(0.5)
    task = manager.page.locator(about, has_text="审核申报")
    manager.shot("inbox")
    assert "有效信息" in task.inner_text()
    task.locator('select[name="approve:bool"]').select_option("true")
    task.get_by_role("button", name="审核申报").click()
    task.locator(".result .accepted, .result .refusal").wait_for()
    manager.shot("reviewed")
    assert task.locator(".result .accepted").count() == 1, task.locator(".result").inner_text()
    manager.close()


def test_an_engineer_submits_a_visit_plan_from_a_lead(server, browser):
    me = server.people["sales_engineer"]
    lead = server.api("GET", "/leads?" + urllib.parse.urlencode(
        {"owner": me["name"], "limit": 1}), "sales_engineer")["leads"][0]
    v = Visit(browser, server, "sales_engineer", PHONE, "plan")
    page = v.go(f"/console/leads/{lead['id']}")
    page.locator("#plan-link").click()
    v.settled()
    # The lead is a row of next week's plan (after the visits already planned, if any).
    row = page.locator("fieldset.plan-row").filter(
        has=page.locator(f'input[type="hidden"][value="{lead["id"]}"]'))
    assert lead["customer"] in row.locator('input[name$=".customer"]').input_value()
    row.locator('input[name$=".purpose"]').fill("带样品拜访")
    rows = page.locator("fieldset.plan-row")
    planned = sum(1 for i in range(rows.count())
                  if rows.nth(i).locator('input[name$=".customer"]').input_value())
    empty = rows.nth(planned)
    # A row with a day and a purpose but no customer is refused, saying which.
    empty.locator('input[type="date"]').fill(empty.locator('input[type="date"]').get_attribute("min"))
    empty.locator('input[name$=".purpose"]').fill("扫楼")
    v.shot("plan-form")
    button = page.get_by_role("button", name="提交计划")
    kind, text = submit(page, button, "#plan-result")
    v.shot("plan-refused")
    assert kind == "refusal" and f"第 {planned + 1} 行拜访未填客户" in text, text
    empty.locator('input[type="date"]').fill("")
    empty.locator('input[name$=".purpose"]').fill("")
    kind, text = submit(page, button, "#plan-result")
    v.shot("plan-submitted")
    assert kind == "accepted" and f"共 {planned} 次拜访" in text, text
    v.check()
    # The page shows the plan as submitted: the revision and the lead's visit with its purpose.
    reload_until(v, lambda p: p.locator("fieldset.plan-row input[value='带样品拜访']").count() == 1,
                 "the submitted plan")
    assert "已提交第" in page.locator("main").inner_text()
    v.shot("plan-again")
    # The engineer's inbox links to the same plan.
    v.go("/console/inbox")
    page.locator("#my-plan").click()
    v.settled()
    assert page.locator("fieldset.plan-row input[value='带样品拜访']").count() == 1
    v.close()


def a_token_for(server: Server, role: str, office: str = "SH") -> str:
    """A token for someone of `role` in `office`, issued at the command line of the server."""
    staff = server.api("GET", f"/staff?office={office}", "sales_department")["staff"]
    person = next(s for s in staff if s["role"] == role and s["active"])
    out = subprocess.run([server.funnel, "--store", server.store, "staff", "token", person["id"]],
                         capture_output=True, text=True, check=True, cwd=server.workdir).stdout
    return re.search(r"^token:\s+(\S+)", out, re.M).group(1)


def act(v: Visit, task_text: str, button: str, fill=None) -> tuple[str, str]:
    """In `v`'s inbox, the task mentioning `task_text` with a `button`: fills it, presses it and
    answers with the result shown in the task."""
    deadline = time.monotonic() + 30
    while True:
        v.go("/console/inbox")
        task = v.page.locator("article.task", has_text=task_text).filter(
            has=v.page.get_by_role("button", name=button))
        if task.count() > 0:
            break
        assert time.monotonic() < deadline, f"no {button} for {task_text} in {v.name}'s inbox"
        time.sleep(0.5)
    task = task.first
    if fill:
        fill(task)
    task.get_by_role("button", name=button).click()
    task.locator(".result .accepted, .result .refusal").wait_for()
    kind = "accepted" if task.locator(".result .accepted").count() else "refusal"
    return kind, task.locator(".result").inner_text()


def test_an_office_summary_is_compiled_verified_reviewed_and_filed_from_the_inboxes(server, browser):
    assistant = Visit(browser, server, None, PHONE, "summary-assistant",
                      token=a_token_for(server, "office_assistant"))
    wait_for_task(assistant, "汇总表")
    task = assistant.page.locator("article.task", has_text="汇总表").first
    period = re.search(r"\d{4}-(W\d{2}|\d{2})", task.locator("h2").inner_text()).group(0)
    lines = task.locator('input[name="lines[]:json"]').count()
    assistant.shot("compile")
    kind, text = act(assistant, period, "编制汇总表")
    assistant.shot("compiled")
    assert kind == "accepted" and f"共 {lines} 行" in text, text
    kind, text = act(assistant, period, "核实汇总表")
    assistant.shot("verified")
    assert kind == "accepted", text

    manager = Visit(browser, server, "office_manager", PHONE, "summary-manager")

    def returned_without_a_reason(task):
        task.locator('select[name="approve:bool"]').select_option("false")

    kind, text = act(manager, period, "审核汇总表", returned_without_a_reason)
    manager.shot("review-refused")
    assert kind == "refusal" and "请说明退回理由" in text, text
    kind, text = act(manager, period, "审核汇总表")
    manager.shot("approved")
    assert kind == "accepted", text

    kind, text = act(assistant, period, "备案汇总表")
    assistant.shot("filed")
    assert kind == "accepted", text
    for v in (assistant, manager):
        v.close()


def test_the_office_workbook_opens_beside_the_csv(server, browser):
    lead = a_lead_of(server, "office_manager")
    v = Visit(browser, server, "office_manager", DESKTOP, "workbook")
    page = v.go(f"/console/leads/{lead['id']}")
    v.shot("forms")
    csv = page.locator("#forms a.csv").first.get_attribute("href")
    answer = page.request.get(server.base + csv)
    assert answer.status == 200 and answer.body().startswith(b"\xef\xbb\xbf"), answer.status
    xlsx = page.locator("#office-workbook").get_attribute("href")
    answer = page.request.get(server.base + xlsx)
    assert answer.status == 200, (xlsx, answer.status, answer.text()[:200])
    assert answer.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), answer.headers
    assert answer.body()[:2] == b"PK"
    # The analysis page offers each office's workbook for a period; the browser downloads it.
    page = v.go("/console/analysis?office=SH")
    form = page.locator("form.office-forms").first
    form.locator('input[name="from"]').fill(
        (datetime.date.today() - datetime.timedelta(days=30)).isoformat())
    v.shot("analysis-workbook")
    with page.expect_download() as download:
        form.locator("button").click()
    name = download.value.suggested_filename
    assert name.startswith("forms-SH-") and name.endswith(".xlsx"), name
    v.close()


def test_an_engineer_amends_a_contract_by_its_file_on_a_phone(server, browser):
    """The owner of a contract under review chooses a new file on a phone: the record lists the
    new version by the file's SHA-256, which is what the reviewers now approve."""
    import hashlib
    found = server.api("GET", "/leads?" + urllib.parse.urlencode(
        {"stage": "prospect", "limit": 500}), "sales_department")
    lead = record = None
    for candidate in found["leads"]:
        r = server.api("GET", f"/leads/{candidate['id']}", "sales_department")
        if r["contracts"] and not r["contracts"][-1]["signed"] and r.get("owner"):
            lead, record = candidate, r
            break
    assert lead, "the demo has a contract under review"
    owner = record["owner"]["staff_id"]
    out = subprocess.run([server.funnel, "--store", server.store, "staff", "token", owner],
                         capture_output=True, text=True, check=True, cwd=server.workdir).stdout
    token = re.search(r"^token:\s+(\S+)", out, re.M).group(1)
    versions = len(record["contracts"][-1]["versions"])

    v = Visit(browser, server, None, PHONE, "contract", token=token)
    page = v.go(f"/console/leads/{lead['id']}")
    page.locator("#contract summary").click()
    form = page.locator("#contract form")
    text = "补充协议：付款节点调整为到货后 30 日。".encode()
    form.locator('input[name="amount_cny:wan"]').fill("98.5")
    form.locator('input[name="file"]').set_input_files(
        files=[{"name": "合同-修订.txt", "mimeType": "text/plain", "buffer": text}])
    form.locator('textarea[name="reason"]').fill("客户要求调整付款节点")
    v.shot("contract-form")
    kind, answer = submit(page, form.locator("button"), "#contract-result")
    v.shot("contract-amended")
    assert kind == "accepted", answer
    fingerprint = hashlib.sha256(text).hexdigest()
    assert fingerprint[:12] in answer, answer
    reload_until(v, lambda p: p.locator("#contract-versions li").count() == versions + 1,
                 "the new contract version")
    assert fingerprint[:12] in page.locator("#contract-versions").inner_text()
    after = server.api("GET", f"/leads/{lead['id']}", "sales_department")
    current = after["contracts"][-1]["versions"][-1]
    assert (current["content_hash"], current["amount_cny"]) == (fingerprint, 985_000), current
    v.close()
