"""The dashboard in a real browser (Debian's chromium driven by Playwright; no browser download) against a
real embedded cluster running real tasks, actors and a job.

One module-scoped cluster and browser keep it quick. Each page's screenshot is saved under
build/test-artifacts/dashboard/ (the path is printed at the end). Waits are Playwright's own (polling with
a timeout), never sleeps: nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

import spindle

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts" / "dashboard"
WAIT_MS = 60_000
expect.set_options(timeout=WAIT_MS)  # a generous bound for a busy machine; expect() polls, it never sleeps blindly


@spindle.remote
def quick(i: int) -> int:
    return i * 2


@spindle.remote
def crunch_numbers(flag: str) -> str:
    print("crunching-marker: the long task started", flush=True)
    while not os.path.exists(flag):
        time.sleep(0.05)
    return "done"


@spindle.remote
def explode() -> None:
    raise ValueError("the dashboard should show this failure")


@spindle.remote
class Victim:
    def ping(self) -> str:
        return "pong"


@spindle.remote
class Survivor:
    def ping(self) -> str:
        return "pong"


@dataclass
class Cluster:
    url: str
    token: str
    flag: str
    victim: Any
    survivor: Any
    job_id: str
    client: Any


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh installs it)")
    flag = str(tmp_path_factory.mktemp("flag") / "stop")
    spindle.init(num_cpus=4)
    try:
        from spindle._core import api
        from spindle.job_submission import JobSubmissionClient

        local = api._state["local"]
        victim, survivor = Victim.options(name="victim").remote(), Survivor.remote()
        assert spindle.get([victim.ping.remote(), survivor.ping.remote()], timeout=60) == ["pong", "pong"]
        assert spindle.get([quick.remote(i) for i in range(40)], timeout=60)[-1] == 78
        with pytest.raises(ValueError):
            spindle.get(explode.remote(), timeout=60)
        long_running = crunch_numbers.remote(flag)
        client = JobSubmissionClient()  # the embedded cluster: its address and token
        job_id = client.submit_job(entrypoint=f"{sys.executable} -u -c \"import time\nfor i in range(100000): "
                                              "print('job-line', i, flush=True); time.sleep(0.2)\"")
        yield Cluster(local.dashboard_address, local.token, flag, victim, survivor, job_id, client)
        Path(flag).touch()
        assert spindle.get(long_running, timeout=60) == "done"
    finally:
        spindle.shutdown()


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"dashboard screenshots: {ARTIFACTS}")


@pytest.fixture(scope="module")
def page(browser: Browser, cluster: Cluster) -> Iterator[Page]:
    """A signed-in page (the sign-in itself is tested below, in a fresh context)."""
    ctx = browser.new_context(viewport={"width": 1366, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(cluster.url + "/")
    pg.get_by_label("Cluster token").fill(cluster.token)
    pg.get_by_role("button", name="Sign in").click()
    expect(pg.get_by_role("heading", name="Overview")).to_be_visible()
    yield pg
    ctx.close()
    assert not errors, f"the pages raised JavaScript errors: {errors}"


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def go(page: Page, route: str, heading: str) -> None:
    page.goto(page.url.split("#")[0] + f"#/{route}")
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()


def test_a_wrong_token_is_refused_and_the_right_one_signs_in_once(browser: Browser, cluster: Cluster) -> None:
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.set_default_timeout(WAIT_MS)
    pg.goto(cluster.url + "/")
    token = pg.get_by_label("Cluster token")
    expect(token).to_be_focused()
    token.fill("not-the-token")
    pg.keyboard.press("Enter")
    expect(pg.get_by_role("alert")).to_contain_text("the token was refused")
    expect(pg.get_by_role("navigation", name="Dashboard pages")).to_be_visible()  # the header stays; no data shown
    assert pg.locator("main").is_hidden()
    shot(pg, "login-refused")
    token.fill(cluster.token)
    pg.get_by_role("button", name="Sign in").click()
    expect(pg.get_by_role("heading", name="Overview")).to_be_visible()
    cookies = {c["name"]: c for c in ctx.cookies()}
    assert cookies["spindle_token"]["httpOnly"] and cookies["spindle_token"]["sameSite"] == "Strict"
    assert cookies["spindle_token"]["value"] != cluster.token
    pg.reload()  # asked once: a reload stays signed in
    expect(pg.get_by_role("heading", name="Overview")).to_be_visible()
    assert pg.evaluate("document.cookie") == ""  # HttpOnly: scripts never see it
    ctx.close()


def test_the_link_printed_by_init_signs_in_and_drops_the_token_from_the_address(browser: Browser, cluster: Cluster) -> None:
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.set_default_timeout(WAIT_MS)
    pg.goto(f"{cluster.url}/#token={cluster.token}")
    expect(pg.get_by_role("heading", name="Overview")).to_be_visible()
    assert cluster.token not in pg.url
    ctx.close()


def test_the_overview_shows_cluster_resources_and_live_node_charts(page: Page, cluster: Cluster) -> None:
    go(page, "overview", "Overview")
    cards = page.get_by_role("group", name="Cluster totals")
    expect(cards).to_contain_text("CPUs used")
    expect(cards).to_contain_text("/ 4")
    expect(cards).to_contain_text("Object store")
    node = page.locator("article.node").first
    expect(node).to_contain_text("127.0.0.1")
    expect(node).to_contain_text("(head)")
    expect(node.locator("canvas")).to_have_count(2)  # CPU and memory charts (uPlot draws on canvas)
    expect(page.locator("#live")).to_have_text("live")  # the SSE feed is connected
    shot(page, "overview")


def test_the_tasks_page_names_the_function_running_in_each_worker(page: Page, cluster: Cluster) -> None:
    go(page, "tasks", "Tasks")
    workers = page.get_by_role("table", name="Live workers and the function each one runs now")
    expect(workers.get_by_role("row").filter(has_text="crunch_numbers")).to_have_count(1)
    summary = page.get_by_role("table", name="Task counts by function (all recorded tasks)")
    quick_row = summary.get_by_role("row").filter(has_text="quick")
    expect(quick_row).to_contain_text("40")
    expect(summary.get_by_role("row").filter(has_text="explode")).to_contain_text("1")
    expect(page.get_by_role("img", name="Timeline: ")).to_have_attribute("aria-label", re.compile(r"^Timeline: \d+ tasks over"))
    expect(page.get_by_role("status").filter(has_text="Showing")).to_contain_text("tasks")
    shot(page, "tasks")


def test_the_task_list_renders_only_the_visible_rows_of_ten_thousand_tasks(page: Page, cluster: Cluster) -> None:
    refs = [quick.remote(i) for i in range(10_000)]
    assert len(spindle.get(refs, timeout=600)) == 10_000
    go(page, "tasks", "Tasks")
    page.get_by_label("Show at most").select_option("10000")
    expect(page.get_by_role("status").filter(has_text="Showing")).to_contain_text("Showing 10000 of")
    rows = page.get_by_role("region", name="Recorded tasks").locator("tbody tr")
    assert rows.count() < 100, "the task list put every row in the DOM"
    expect(page.get_by_role("table", name="Task counts by function (all recorded tasks)")
           .get_by_role("row").filter(has_text="quick")).to_contain_text("10040")
    shot(page, "tasks-10000")


def test_an_actor_is_killed_from_the_actors_page_after_confirmation(page: Page, cluster: Cluster) -> None:
    go(page, "actors", "Actors")
    row = page.get_by_role("row").filter(has_text="Victim")
    expect(row).to_contain_text("ALIVE")
    expect(page.get_by_role("row").filter(has_text="Survivor")).to_contain_text("ALIVE")
    row.get_by_role("button", name="Kill actor Victim").click()
    dialog = page.get_by_role("dialog", name="Kill this actor?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Victim")
    shot(page, "actors-confirm-kill")
    dialog.get_by_role("button", name="Cancel").click()  # cancelling kills nothing
    expect(page.get_by_role("status").filter(has_text="cancelled")).to_be_visible()
    assert spindle.get(cluster.victim.ping.remote(), timeout=30) == "pong"
    row.get_by_role("button", name="Kill actor Victim").click()
    dialog.get_by_role("button", name="Kill actor").click()
    expect(page.get_by_role("status").filter(has_text="Killed actor Victim")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="Victim")).to_contain_text("DEAD")
    with pytest.raises(spindle.exceptions.RayActorError):
        spindle.get(cluster.victim.ping.remote(), timeout=60)
    assert spindle.get(cluster.survivor.ping.remote(), timeout=30) == "pong"
    shot(page, "actors")


def test_a_jobs_logs_stream_live_and_it_is_stopped_from_the_page(page: Page, cluster: Cluster) -> None:
    go(page, "jobs", "Jobs")
    page.get_by_role("link", name=cluster.job_id).click()
    logs = page.get_by_label(f"Logs of job {cluster.job_id}")
    expect(logs).to_contain_text("job-line 3")
    seen = int(logs.inner_text().strip().splitlines()[-1].split()[-1])
    expect(logs).to_contain_text(f"job-line {seen + 5}")  # new lines arrive without reloading
    shot(page, "jobs")
    page.get_by_role("button", name="Stop job").click()
    page.get_by_role("dialog", name="Stop this job?").get_by_role("button", name="Stop job").click()
    expect(page.locator("[data-job-status]")).to_contain_text("STOPPED")
    assert cluster.client.get_job_status(cluster.job_id).value == "STOPPED"
    expect(page.get_by_role("button", name="Stop job")).to_be_disabled()


def test_the_logs_page_tails_and_searches_a_worker_log(page: Page, cluster: Cluster) -> None:
    go(page, "logs", "Logs")
    files = page.get_by_label("File")
    expect(files.locator("option")).not_to_have_count(0)
    outs = [o for o in files.locator("option").all_inner_texts() if o.endswith(".out")]
    text = ""
    for name in outs:  # the worker that runs crunch_numbers printed the marker
        files.select_option(name)
        expect(page.get_by_role("status").filter(has_text=name)).to_be_visible()
        text = page.get_by_label("Log lines").inner_text()
        if "crunching-marker" in text:
            break
    assert "crunching-marker" in text, f"no worker log among {outs} has the marker"
    page.get_by_label("Search").fill("crunching")
    expect(page.get_by_label("Log lines").locator("mark")).to_have_text(["crunching"])
    shot(page, "logs")


def test_the_errors_page_shows_the_failure_with_its_traceback(page: Page, cluster: Cluster) -> None:
    go(page, "errors", "Errors")
    failure = page.locator("details.err").filter(has_text="explode")
    expect(failure).to_contain_text("ValueError")
    failure.locator("summary").click()
    expect(failure.get_by_label("Traceback")).to_contain_text("the dashboard should show this failure")
    expect(failure.get_by_label("Traceback")).to_contain_text("Traceback")
    shot(page, "errors")


def test_the_pages_are_reachable_by_keyboard_with_landmarks_and_labels(page: Page, cluster: Cluster) -> None:
    go(page, "overview", "Overview")
    page.keyboard.press("Tab")  # the skip link comes first
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    nav = page.get_by_role("navigation", name="Dashboard pages")
    nav.get_by_role("link", name="Errors").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Errors", exact=True)).to_be_visible()
    expect(nav.get_by_role("link", name="Errors")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("main")).to_have_count(1)
    expect(page.get_by_role("banner")).to_have_count(1)
    for route, heading in [("tasks", "Tasks"), ("logs", "Logs"), ("actors", "Actors")]:
        go(page, route, heading)
        unlabeled = page.evaluate("""() => [...document.querySelectorAll('main input, main select')]
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map(el => el.id || el.outerHTML)""")
        assert unlabeled == [], f"{route}: form fields without a label: {unlabeled}"


# WCAG 2.x contrast of every visible text element against the background it is drawn on (ancestors'
# backgrounds composited, alpha included): 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold).
LOW_CONTRAST_JS = """() => {
  const parse = c => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const blend = (top, under) => { const a = top[3];
    return [0, 1, 2].map(i => top[i] * a + under[i] * (1 - a)).concat([1]); };
  const lum = rgb => 0.2126 * ch(rgb[0]) + 0.7152 * ch(rgb[1]) + 0.0722 * ch(rgb[2]);
  const ch = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const background = el => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
    let bg = [255, 255, 255, 1]; for (const l of layers.reverse()) bg = blend(l, bg); return bg; };
  const low = [], seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent.trim(), el = walker.currentNode.parentElement;
    if (!text || seen.has(el)) continue;
    seen.add(el);
    const st = getComputedStyle(el), box = el.getBoundingClientRect();
    if (st.visibility === "hidden" || box.width <= 1 || box.height <= 1 || el.closest("[aria-hidden=true]")
        || el.closest(":disabled")) continue;
    const bg = background(el), fg = blend(parse(st.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a), ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(st.fontSize), large = size >= 24 || (parseInt(st.fontWeight) >= 700 && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) low.push(`${el.tagName.toLowerCase()}.${el.className} "${text.slice(0, 40)}" `
                                            + `${ratio.toFixed(2)}:1 (${st.color} on rgb(${bg.slice(0, 3).map(Math.round)}))`);
  }
  return low;
}"""


def test_every_page_keeps_its_text_at_wcag_aa_contrast(page: Page, cluster: Cluster) -> None:
    go(page, "overview", "Overview")
    probe = "document.querySelector('main').insertAdjacentHTML('beforeend', '<p id=probe style=\"color:#aaa\">faint</p>')"
    page.evaluate(f"() => {{ {probe} }}")  # the check itself finds light grey on white (2.3:1)
    assert [line for line in page.evaluate(LOW_CONTRAST_JS) if '"faint"' in line], "the contrast check is blind"
    page.evaluate("() => document.getElementById('probe').remove()")
    for route, heading in [("overview", "Overview"), ("tasks", "Tasks"), ("actors", "Actors"), ("jobs", "Jobs"),
                           ("logs", "Logs"), ("errors", "Errors")]:
        go(page, route, heading)
        page.wait_for_function("() => document.querySelector('main').innerText.length > 60")  # content, not a heading
        low = page.evaluate(LOW_CONTRAST_JS)
        assert low == [], f"{route}: text below WCAG AA contrast: {low}"


def test_the_sse_feed_and_api_need_the_login_even_from_the_browser(browser: Browser, cluster: Cluster) -> None:
    ctx = browser.new_context()
    pg = ctx.new_page()
    resp = pg.request.get(cluster.url + "/api/spindle/overview")
    assert resp.status == 401
    resp = pg.request.post(f"{cluster.url}/api/spindle/actors/{cluster.survivor.actor_id}/kill", data="{}")
    assert resp.status == 401
    ctx.close()
