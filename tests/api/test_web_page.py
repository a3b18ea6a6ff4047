"""The officials' page, driven in a real headless Chromium against a demo server.

The browser is Debian's chromium (/usr/bin/chromium, from apt), driven through Playwright
with `executable_path`; nothing here downloads a browser. Every step writes a screenshot
to tests/.artifacts/web/ (not committed) so that a person can look at what the test saw.

What the tests check is what an official would notice: visible text, rows, drawings and
downloaded files, in Vietnamese by default and in English after the switch.
"""

from __future__ import annotations

import csv
import io
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.api.conftest import ROOT, demo_tokens

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / ".artifacts" / "web"
VIETNAM = timedelta(hours=7)
CONTACT_HEADER = ["person", "level", "exposed_at", "venue", "venue_name", "start", "end",
                  "minutes"]
VILLAGE_HEADER = ["village", "venues", "venues_with_qr_points", "silent_venues", "checkins",
                  "checkins_per_venue_day"]


def vi_number(n: int) -> str:
    """A whole number as the page shows it in Vietnamese (1.458)."""
    return f"{n:,}".replace(",", ".")


@pytest.fixture(scope="module")
def chromium():
    """A headless Debian chromium under Playwright (module-wide)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing at /usr/bin/chromium. Install it with "
                    "`sudo apt-get install -y chromium` (as root: `apt-get install -y "
                    "chromium`); these tests drive that browser and never download one.")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(demo_server):
    """The demo server, its page checked to be served, and the demo officials' tokens."""
    answer = requests.get(demo_server.url + "/", timeout=30)
    if answer.status_code == 404:
        pytest.fail("the officials' page is not served at /: api/app.py must include the "
                    "router of api/routes/web.py (app.include_router(web.router))")
    tokens = demo_tokens(demo_server)
    assert "commune" in tokens, demo_server.output()
    return demo_server, tokens


class Screens:
    """Numbered screenshots of one test's steps under tests/.artifacts/web/."""

    def __init__(self, page, prefix: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page, self.prefix, self.n = page, prefix, 0

    def __call__(self, name: str, full_page: bool = False, locator=None) -> None:
        self.n += 1
        path = ARTIFACTS / f"{self.prefix}-{self.n:02d}-{name}.png"
        if locator is not None:
            locator.screenshot(path=str(path))
        else:
            self.page.screenshot(path=str(path), full_page=full_page)


@pytest.fixture
def page(chromium):
    """A fresh browser tab (its own storage) that records console errors."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900},
                                   accept_downloads=True, locale="vi-VN")
    context.set_default_timeout(60_000)
    tab = context.new_page()
    tab.problems = []
    tab.on("pageerror", lambda exc: tab.problems.append(f"script error: {exc}"))
    # the browser logs every refused request; the wrong tokens' 401 and 403 are expected,
    # a closed case's 410, and the 422 of a case form the server refuses
    expected = re.compile(r"status of (40[13]|410|422) ")
    tab.on("console", lambda m: tab.problems.append(m.text)
           if m.type == "error" and not expected.search(m.text) else None)
    yield tab
    context.close()


def read_download(download) -> str:
    return Path(download.path()).read_text(encoding="utf-8")


def show_case(page, server, token: str, case: int) -> None:
    """Sign in with `token` and open case `case` from the list, its F1 table drawn."""
    page.goto(server.url + "/")
    page.get_by_label("Mã đăng nhập").fill(token)
    page.get_by_role("button", name="Đăng nhập", exact=True).click()
    page.get_by_role("link", name=f"Xem ca #{case}").click()
    page.get_by_role("heading", name=f"Ca #{case}", exact=True).wait_for()
    page.locator("#f1 tbody tr").first.wait_for()


def test_page_headers_keep_it_to_itself(site):
    server, _ = site
    page = requests.get(server.url + "/", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    # nothing comes from another origin: no external script, style or font
    assert not re.search(r'(src|href)="(https?:)?//', page.text)
    assert "<script>" not in page.text and " style=" not in page.text
    script = requests.get(server.url + "/static/app.js", timeout=30)
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["x-content-type-options"] == "nosniff"
    for name in ("nothing.js", "..%2Fapp.py", "index.html"):
        assert requests.get(f"{server.url}/static/{name}", timeout=30).status_code == 404
    assert "/" not in requests.get(server.url + "/openapi.json", timeout=30).json()["paths"]


def test_the_demo_officials_tokens_lapse_as_any_officials_do(site):
    """A privacy review found the demo's sign-in tokens valid for ever (expires: null),
    where an official's token lapses after 90 days."""
    import time

    server, tokens = site
    for token in (tokens["commune"], tokens["district"]):
        me = server.get("/v1/me", token=token).json()
        assert me["expires"] is not None, me
        assert 89 * 86400 < me["expires"] - time.time() <= 90 * 86400


def test_both_languages_have_every_label(site, page):
    server, _ = site
    page.goto(server.url + "/")
    keys = page.evaluate("""() => {
        const d = window.QRTRACE_I18N;
        const used = [...document.querySelectorAll('[data-i18n]')].map(e => e.dataset.i18n);
        return {vi: Object.keys(d.vi).sort(), en: Object.keys(d.en).sort(), used};
    }""")
    assert keys["vi"] == keys["en"]
    assert set(keys["used"]) <= set(keys["vi"])
    assert page.locator("html").get_attribute("lang") == "vi"
    assert not page.problems


def test_an_official_signs_in_traces_a_case_and_reads_the_adoption_report(site, page):
    server, tokens = site
    token = tokens["commune"]
    cases = server.get("/v1/cases", token=token).json()
    demo = next(c for c in cases if c["purpose"].startswith("Ca dương tính (demo)"))
    exposure = server.get(f"/v1/cases/{demo['id']}/exposure", token=token).json()
    counts = exposure["counts"]
    shot = Screens(page, "journey")

    # Sign in: a wrong token first, then the commune official's.
    page.goto(server.url + "/")
    page.get_by_label("Mã đăng nhập").fill("qrt_official_not-a-real-token")
    page.get_by_role("button", name="Đăng nhập", exact=True).click()
    error = page.locator("#signin-error")
    error.get_by_text("Mã đăng nhập không đúng").wait_for()
    shot("wrong-token")
    page.get_by_label("Mã đăng nhập").fill(server.admin_token)
    page.get_by_role("button", name="Đăng nhập", exact=True).click()
    error.get_by_text("không phải mã của cán bộ y tế").wait_for()
    page.get_by_label("Mã đăng nhập").fill(token)
    page.get_by_role("button", name="Đăng nhập", exact=True).click()
    page.get_by_role("heading", name="Các ca bệnh trong địa bàn").wait_for()
    link = page.get_by_role("link", name=f"Xem ca #{demo['id']}")
    link.wait_for()
    assert token not in page.url
    assert page.evaluate("sessionStorage.getItem('qrtrace.token')") == token
    shot("cases")

    # The demo case: counts, F1 rows with evidence, zones timeline, graph, comparison.
    link.click()
    page.get_by_role("heading", name=f"Ca #{demo['id']}", exact=True).wait_for()
    page.locator("#f1 tbody tr").first.wait_for()
    assert page.locator("#count-f1").inner_text() == vi_number(counts["f1"])
    assert page.locator("#count-f2").inner_text() == vi_number(counts["f2"])
    assert counts["f1"] > 0 and page.locator("#f1 tbody tr").count() == min(counts["f1"], 100)
    first_f1 = page.locator("#f1 tbody tr").first
    assert re.search(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2} – .*phút", first_f1.inner_text())
    venue_names = {v["name"] for v in exposure["venues"]}
    assert any(name in first_f1.inner_text() for name in venue_names)
    timeline = page.locator("#timeline svg.timeline")
    assert timeline.is_visible() and page.locator("#timeline rect.bar.l0").count() > 0
    graph = page.locator("#graph svg.contact-graph")
    page.locator("#graph circle.person").first.wait_for()
    assert graph.is_visible() and page.locator("#graph circle.person").count() > 1
    assert page.locator("#graph circle.person.level-0").count() == 1
    assert page.locator("#graph circle.person.level-1").count() > 0
    comparison = page.locator("#comparison")
    assert "Phong tỏa cả thôn" in comparison.inner_text()
    village_persons = exposure["comparison"]["village"]["persons"]
    assert vi_number(village_persons) in comparison.inner_text()
    shot("case")
    # Times in the chosen zone: UTC+7 by default, the same instants at UTC+0 after a switch.
    meta = page.locator("#case-meta")
    for hours in (7, 0):
        page.get_by_label("Múi giờ hiển thị").select_option(str(hours))
        local = datetime.fromtimestamp(demo["from"], UTC) + timedelta(hours=hours)
        assert f"{local:%d/%m/%Y %H:%M} – " in meta.inner_text()
        assert f"(UTC+{hours})" in meta.inner_text()
    page.get_by_label("Múi giờ hiển thị").select_option("7")
    shot("case-zones-timeline", locator=page.locator("#timeline"))
    shot("case-graph", locator=page.locator("#graph"))

    # Export the contacts as CSV: the download carries the token, the file has rows.
    with page.expect_download() as caught:
        page.get_by_role("button", name="Tải danh sách tiếp xúc (CSV)").click()
    download = caught.value
    assert download.suggested_filename == f"case-{demo['id']}-contacts.csv"
    rows = list(csv.reader(io.StringIO(read_download(download))))
    assert rows[0] == CONTACT_HEADER
    assert len(rows) > 1 and {r[1] for r in rows[1:]} >= {"1"}
    page.get_by_text(f"Đã tải case-{demo['id']}-contacts.csv").wait_for()

    # The printable order: only the order, with its zones and signature lines.
    page.emulate_media(media="print")
    order = page.locator("#print-order")
    assert order.is_visible() and not page.locator("#main").is_visible()
    assert "DANH SÁCH VÙNG CẦN PHONG TỎA" in order.inner_text()
    assert "Xã: Đức Thượng" in order.inner_text() and "Người lập" in order.inner_text()
    assert order.locator("tbody tr").count() == counts["zones"]
    shot("print-order", full_page=True)
    page.emulate_media(media="screen")
    assert not order.is_visible()
    page.get_by_role("button", name="In danh sách vùng khoanh").click()  # the print dialog

    # English and back.
    page.get_by_role("button", name="Switch to English").click()
    page.get_by_role("heading", name=f"Case #{demo['id']}", exact=True).wait_for()
    assert page.get_by_role("heading", name="Contact graph").is_visible()
    assert page.get_by_role("button", name="Download the contacts (CSV)").is_visible()
    assert page.locator("html").get_attribute("lang") == "en"
    shot("case-in-english")
    page.get_by_role("button", name="Chuyển sang tiếng Việt").click()
    page.get_by_role("heading", name="Sơ đồ tiếp xúc").wait_for()

    # A phone: the page fits the screen's width (the drawings scroll inside their boxes).
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot("case-on-a-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # Open a new case through the form: one of the demo case's F1 turns positive.
    f1_person = next(c["person"] for c in exposure["contacts"] if c["level"] == 1)
    page.get_by_role("link", name="Ca bệnh", exact=True).click()
    page.get_by_role("heading", name="Mở ca bệnh mới").wait_for()
    page.get_by_label("Mã QR cá nhân hoặc số định danh").fill(str(f1_person))
    page.get_by_label("Mục đích").fill("Kiểm thử trang: F1 của ca demo dương tính")
    shot("new-case-form", full_page=True)
    page.get_by_role("button", name="Mở ca bệnh").click()
    page.get_by_text(f"Người bệnh (F0): số {f1_person}").wait_for()
    new_id = int(re.search(r"#/case/(\d+)", page.url).group(1))
    assert new_id != demo["id"]
    page.get_by_role("heading", name=f"Ca #{new_id}", exact=True).wait_for()
    page.locator("#graph circle.person.level-0").wait_for()
    assert int(page.locator("#count-f1").inner_text().replace(".", "")) > 0
    shot("new-case")

    # The adoption page: the last 14 whole days, silent venues first and highlighted, a
    # chart.
    page.get_by_role("link", name="Sử dụng mã QR").click()
    page.locator("#ad-venues tbody tr").first.wait_for()
    yesterday = (datetime.now(UTC) + VIETNAM).date() - timedelta(1)
    assert page.get_by_label("Đến ngày").input_value() == yesterday.isoformat()
    assert page.get_by_label("Từ ngày").input_value() == \
        (yesterday - timedelta(13)).isoformat()
    first_venue = page.locator("#ad-venues tbody tr").first
    assert "silent" in first_venue.get_attribute("class")
    assert "Có mã QR, không ai quét" in first_venue.inner_text()
    highlighted = page.locator("#ad-venues tbody tr.silent")
    assert highlighted.count() > 0
    colour = highlighted.first.locator("td").first.evaluate(
        "td => getComputedStyle(td).backgroundColor")
    plain = page.locator("#ad-venues tbody tr:not(.silent) td").first.evaluate(
        "td => getComputedStyle(td).backgroundColor")
    assert colour != plain
    chart = page.locator("#ad-chart svg.adoption-chart")
    assert chart.is_visible() and page.locator("#ad-chart polyline").count() >= 1
    assert "Thôn" in chart.text_content()
    shot("adoption", full_page=False)
    shot("adoption-chart", locator=page.locator("#ad-chart"))
    with page.expect_download() as caught:
        page.get_by_role("button", name="Tải báo cáo theo thôn (CSV)").click()
    villages = list(csv.reader(io.StringIO(read_download(caught.value))))
    assert villages[0][:6] == VILLAGE_HEADER and len(villages) > 1
    with page.expect_download() as caught:
        page.get_by_role("button", name="Tải biểu đồ (ảnh SVG)").click()
    assert caught.value.suggested_filename.endswith(".svg")
    picture = read_download(caught.value)
    assert picture.startswith("<?xml") and "<svg" in picture and "polyline" in picture
    # days whose check-ins were deleted: refused in Vietnamese, and the report shown
    # for the days before is cleared, not left under the dates just refused
    page.get_by_label("Từ ngày").fill((yesterday - timedelta(60)).isoformat())
    page.get_by_label("Từ ngày").press("Enter")
    page.locator("#adoption-error").get_by_text("thời hạn lưu trữ").wait_for()
    assert page.locator("#adoption-body").is_hidden()
    page.get_by_label("Từ ngày").fill((yesterday - timedelta(13)).isoformat())
    page.get_by_label("Từ ngày").press("Enter")
    page.locator("#ad-venues tbody tr").first.wait_for()
    assert page.locator("#adoption-error").is_hidden()

    # Sign out: the token is gone from the tab.
    page.get_by_role("button", name="Đăng xuất").click()
    page.get_by_role("heading", name="Đăng nhập", exact=True).wait_for()
    assert page.evaluate("sessionStorage.getItem('qrtrace.token')") is None
    assert token not in page.url
    shot("signed-out")
    assert not page.problems, page.problems


def test_person_ids_beyond_javascripts_exact_integers_are_shown_exactly(site, page):
    """Person ids reach 2^64 - 1; a JavaScript number holds integers exactly up to 2^53
    only, and the page showed 9007199254740993 as ...992: another person to quarantine."""
    import time

    server, tokens = site
    case_person, contact = 2**60 + 1, 2**53 + 1
    device = server.post("/v1/admin/devices", json={"name": "big ids", "venue": 1}).json()
    now = int(time.time())
    for seq, person in enumerate((case_person, contact)):
        token = server.post("/v1/admin/tokens", json={"kind": "person", "id": person}).json()
        r = server.post("/v1/scan", token=device["token"], json={
            "token": token["token"], "time": now - 7200 + 60 * seq, "seq": seq})
        assert r.json()["status"] == "accepted", r.text
    r = server.post("/v1/cases", token=tokens["commune"], json={
        "person": str(case_person), "from": now - 86400, "to": now, "purpose": "big ids"})
    assert r.status_code == 201, r.text
    case = r.json()["id"]
    show_case(page, server, tokens["commune"], case)
    assert f"số {case_person}" in page.locator("#case-meta").inner_text()
    assert f"Số {contact}" in page.locator("#f1").inner_text()
    assert not page.problems, page.problems


def test_a_deeper_rule_counts_every_level_below_f1_among_those_to_test(site, page):
    """A case traced to depth 3: its F3 contacts are tested too. The page's F2 box, its
    printed order and the comparison with a lockdown left them out (4,779 shown of the
    4,792 listed)."""
    server, tokens = site
    token = tokens["commune"]
    demo = next(c for c in server.get("/v1/cases", token=token).json()
                if c["purpose"].startswith("Ca dương tính (demo)"))
    r = server.post("/v1/cases", token=token, json={
        "person": str(demo["person"]), "from": demo["from"], "to": demo["to"], "depth": 3,
        "purpose": "depth 3"})
    assert r.status_code == 201, r.text
    case = r.json()["id"]
    exposure = server.get(f"/v1/cases/{case}/exposure", token=token).json()
    counts = exposure["counts"]
    assert counts.get("f3", 0) > 0, counts  # the demo commune has F3s at depth 3
    below = counts["f2"] + counts["f3"]
    assert exposure["comparison"]["narrow"]["test"] == below
    show_case(page, server, token, case)
    assert page.locator("#count-f2").inner_text() == vi_number(below)
    assert page.locator("#count-f2-levels").inner_text() == \
        f"F2: {vi_number(counts['f2'])}, F3: {vi_number(counts['f3'])}"
    persons = counts["f1"] + below
    assert vi_number(persons) in page.locator("#comparison").inner_text()
    assert not page.problems, page.problems


def test_a_case_whose_check_ins_are_gone_says_so(site, page):
    """A case whose person has no check-in left in its window (deleted at the end of the
    retention period after it was opened) showed 0 / 0 / 0 and "No zones", as if the
    person had met nobody; the page now says there is nothing to trace. Such a case
    cannot be opened any more, so the server's answer for it is shaped here: the demo
    case's exposure with its trace emptied, as a purge leaves it."""
    import json

    server, tokens = site
    token = tokens["commune"]
    demo = next(c for c in server.get("/v1/cases", token=token).json()
                if c["purpose"].startswith("Ca dương tính (demo)"))

    def emptied(route):
        body = json.loads(route.fetch().text())
        body.update(contacts=[], contacts_total=0, zones=[], venues=[],
                    counts={"f1": 0, "f2": 0, "zones": 0})
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    show_case(page, server, token, demo["id"])
    assert page.locator("#case-unseen").count() == 0  # a case with its trace: no notice
    page.route(f"**/v1/cases/{demo['id']}/exposure*", emptied)
    page.get_by_role("link", name="Ca bệnh", exact=True).click()
    page.get_by_role("link", name=f"Xem ca #{demo['id']}").click()
    notice = page.locator("#case-unseen")
    notice.wait_for()
    assert "chưa có lượt quét nào" in notice.inner_text()
    assert page.locator("#count-f1").inner_text() == "0"
    page.get_by_role("button", name="Switch to English").click()
    assert "no check-in in the window" in notice.inner_text()
    assert not page.problems, page.problems


def test_the_api_docs_draw_offline_from_this_server_alone(site, page):
    """/docs loaded Swagger UI from a CDN: a blank page where nothing else answers. It is
    served by the server itself, and the browser asks no other origin for anything."""
    server, _ = site
    asked = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(server.url + "/docs")
    page.locator(".swagger-ui .info .title").get_by_text("qrtrace").wait_for()
    page.locator(".opblock-summary-path", has_text="/v1/cases/{case_id}/exposure").first \
        .wait_for()
    assert asked and all(url.startswith(server.url) for url in asked), asked
    assert not page.problems, page.problems


def test_the_case_form_says_what_is_wrong_in_the_officials_language(site, page):
    """A review met raw server English in the Vietnamese page (a pydantic type name for an
    id with a space, a window 'more than a day from now' in UTC), a generic 'you may not
    see this' for a person seen elsewhere, and a pre-filled purpose that made the audited
    purposes boilerplate."""
    import time

    server, tokens = site
    page.goto(server.url + "/")
    page.get_by_label("Mã đăng nhập").fill(tokens["commune"])
    page.get_by_role("button", name="Đăng nhập", exact=True).click()
    page.get_by_role("heading", name="Mở ca bệnh mới").wait_for()
    assert page.get_by_label("Mục đích").input_value() == ""  # the official writes it
    person, message = page.get_by_label("Mã QR cá nhân hoặc số định danh"), \
        page.locator("#case-form-error")
    submit = page.locator("#case-submit")  # named "Mở ca bệnh", then "Open the case"
    person.fill("12 34")
    page.get_by_label("Mục đích").fill("Kiểm thử biểu mẫu")
    submit.click()
    assert "chỉ gồm chữ số" in message.inner_text()
    person.fill("1234")
    page.locator("#f-to").fill(time.strftime("%Y-%m-%dT%H:%M",
                                                 time.gmtime(time.time() + 7 * 3600 + 3 * 86400)))
    submit.click()
    assert "không được sau" in message.inner_text() and "Z)" not in message.inner_text()
    page.locator("#f-to").fill(time.strftime("%Y-%m-%dT%H:%M",
                                                 time.gmtime(time.time() + 7 * 3600 - 3600)))
    page.get_by_label("Mục đích").fill("")
    submit.click()
    assert "mục đích" in message.inner_text().lower()
    # a person seen nowhere, over a window running into the next hours: refused, and why
    page.get_by_label("Mục đích").fill("Kiểm thử biểu mẫu")
    person.fill("987654321")
    page.locator("#f-to").fill(time.strftime("%Y-%m-%dT%H:%M",
                                             time.gmtime(time.time() + 7 * 3600 + 7200)))
    submit.click()
    message.get_by_text("không có lượt quét tại địa điểm nào trong địa bàn của bạn").wait_for()
    assert "check-in" not in message.inner_text()  # the server's English stays out
    # refusals the form cannot foresee come back in the page's language too
    page.locator("#f-to").fill(time.strftime("%Y-%m-%dT%H:%M",
                                             time.gmtime(time.time() + 7 * 3600 - 3600)))
    forged = server.post("/v1/admin/tokens", json={"kind": "person", "id": 5}).json()["token"]
    person.fill(forged[:-2] + ("AA" if not forged.endswith("AA") else "BB"))
    submit.click()
    message.get_by_text("không phải mã QR cá nhân hợp lệ").wait_for()
    venue = server.post("/v1/admin/tokens", json={"kind": "venue", "id": 1}).json()["token"]
    person.fill(venue)
    submit.click()
    message.get_by_text("mã QR của một địa điểm").wait_for()
    page.get_by_role("button", name="Switch to English").click()
    submit.click()
    message.get_by_text("a venue's QR token, not a personal one").wait_for()
    assert not page.problems, page.problems


def test_an_official_closes_a_case_and_it_shows_nothing_more(site, page):
    server, tokens = site
    token = tokens["commune"]
    demo = next(c for c in server.get("/v1/cases", token=token).json()
                if c["purpose"].startswith("Ca dương tính (demo)"))
    case = server.post("/v1/cases", token=token, json={
        "person": str(demo["person"]), "from": demo["from"], "to": demo["to"],
        "purpose": "to be closed"}).json()["id"]
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(server.url + "/")
    page.get_by_label("Mã đăng nhập").fill(token)
    page.get_by_role("button", name="Đăng nhập", exact=True).click()
    page.get_by_role("link", name=f"Xem ca #{case}").click()
    page.locator("#f1 tbody tr").first.wait_for()
    page.get_by_role("button", name="Đóng ca (kết thúc truy vết)").click()
    page.get_by_text("Ca này đã được đóng").wait_for()
    assert page.locator("#case-body").is_hidden()
    assert server.get(f"/v1/cases/{case}/exposure", token=token).status_code == 410
    page.get_by_role("link", name="Ca bệnh", exact=True).click()
    row = page.locator("#cases-table tr", has_text=f"Xem ca #{case}")
    row.get_by_text("đã đóng").wait_for()  # once the list is fetched again
    assert not page.problems, page.problems
