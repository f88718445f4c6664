"""luci-app-bonding in a real browser: Debian's headless Chromium, through real LuCI (uhttpd's
ucode dispatcher, rpcd and its luci plugins) in a scratch OpenWrt router (root only).

The router (tests/owrt/browser_router.py) installs our feed with opkg, and bondingd, under procd,
probes real targets through the router's two links.  Chromium runs in the router's network
namespace and is driven over the DevTools protocol (tests/owrt/browser_cdp.py); every page is
reached through LuCI's login form, as `admin` or as the README's read-only `viewer`.  On every
page: no JavaScript exception, no console error (but LuCI's own 404 from cgi-io, which the
scratch router lacks), every file of the app loaded, and every ubus call of the app's own (the
`bonding` object, uci on the `bonding` config) answered with status 0.  Timings are printed: a
blackholed link's time to a red row after bondingd declared it down, and the whole module's.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser_cdp import Browser, Page
from .browser_router import URL, LuciRouter, luci_router
from .conftest import say
from .test_router_rpcd import PASSWORDS

DOWN_TO_RED_S = 2.0  # the bar: a red row within 2 s of bondingd declaring the link down


@pytest.fixture(scope="module")
def lr(router_prereqs: Path, owrt_feed: Path, tmp_path_factory: pytest.TempPathFactory,
       worker_tag: str, request: pytest.FixtureRequest) -> Iterator[LuciRouter]:
    t0 = time.monotonic()
    with luci_router(router_prereqs, owrt_feed, tmp_path_factory.mktemp("luci-browser"),
                     f"{worker_tag}b") as router:
        say(request.config, f"LuCI router (opkg, procd, rpcd, uhttpd, bondingd) up in "
            f"{time.monotonic() - t0:.1f} s")
        yield router
    say(request.config, f"browser tests: {time.monotonic() - t0:.1f} s in all, router included")


@pytest.fixture(scope="module")
def browser(lr: LuciRouter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with Browser(tmp_path_factory.mktemp("chromium"), netns=lr.root.ns) as b:
        yield b


@pytest.fixture(autouse=True)
def router_said_on_failure(lr: LuciRouter, request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        say(request.config, f"{request.node.name} failed; the router then:\n{lr.diagnosis()}")


def login(b: Browser, user: str, path: str = "/admin/services/bonding/status") -> None:
    """LuCI's login form on `path`, filled in and sent as a user does."""
    b.call("Network.clearBrowserCookies")
    b.new_log()
    b.goto(URL + path)
    # the bootstrap theme moves the form into its login dialog once its view has loaded
    form = "#modal_overlay .modal"
    b.wait_js(f"document.querySelector('{form} input[name=luci_password]')", 10, "the login form")
    b.js(f"document.querySelector('{form} input[name=luci_username]').value = ''")
    b.type_into(f"{form} input[name=luci_username]", user)
    b.type_into(f"{form} input[name=luci_password]", PASSWORDS[user])
    typed = b.js(f"[document.querySelector('{form} input[name=luci_username]').value, "
                 f"document.querySelector('{form} input[name=luci_password]').value]")
    assert typed == [user, PASSWORDS[user]], typed
    b.new_log()  # the login page itself comes with HTTP 403, LuCI's way
    b.click(f"{form} button")
    b.wait_js("!document.querySelector('input[name=luci_password]') && "
              "document.readyState === 'complete' && !!document.querySelector('#view')", 15,
              f"LuCI's page after {user}'s login")
    assert_clean(b)


def open_page(b: Browser, path: str, ready: str) -> None:
    b.new_log()
    b.goto(URL + path)
    b.wait_js(ready, 15, f"{path} rendered")


def own_call(obj: str, args: dict[str, Any]) -> bool:
    return obj == "bonding" or (obj == "uci" and args.get("config") == "bonding")


def assert_clean(b: Browser, page: Page | None = None, allow: Any = None) -> None:
    """No exception, no console error, every own rpc call answered (`allow`: calls that may
    fail, a predicate on RpcCall)."""
    page = page or b.page
    assert page.exceptions == [], page.exceptions
    # LuCI's apply asks cgi-io's /cgi-bin/cgi-exec for luci-peeraddr (the router's addresses, to
    # find it again after a rollback); the scratch router has no cgi-io, and LuCI takes the 404
    # as no answer (L.resolveDefault)
    errors = [e for e in page.console_errors
              if not re.search(r"status of 404 .*/cgi-bin/cgi-exec\?\d+$", e)]
    assert errors == [], errors
    bad = [c for c in b.rpc_calls(page) if own_call(c.obj, c.args) and not c.ok()
           and not (allow and allow(c))]
    assert bad == [], bad
    failed = [(r.url, r.status, r.failed) for r in page.requests.values()
              if "/luci-static/resources/" in r.url and (r.failed or (r.status or 0) >= 400)]
    assert failed == [], failed


STATUS_READY = "!!document.querySelector('#bonding-status')"


def rows(b: Browser) -> dict[str, dict[str, str]]:
    """The links table: link -> its state and its cells by column title."""
    out = b.js("""(() => {
        const out = {};
        for (const tr of document.querySelectorAll('#bonding-links-table tr[data-link]')) {
            const cells = { state: tr.dataset.state };
            for (const td of tr.querySelectorAll('td[data-title]'))
                cells[td.dataset.title] = td.innerText.replace(/\\s+/g, ' ').trim();
            out[tr.dataset.link] = cells;
        }
        return out;
    })()""")
    assert isinstance(out, dict)
    return out


def just_polled(b: Browser) -> None:
    """Wait for the next poll to redraw the links table: the table is drawn anew every poll,
    and a click whose press and release straddle a redraw lands on no button (as a user's)."""
    b.js("document.querySelector('#bonding-links-table').dataset.old = '1'")
    b.wait_js("document.querySelector('#bonding-links-table')?.dataset.old === undefined", 5,
              "the next poll")


def total_points(b: Browser) -> str:
    return str(b.js("(document.querySelector('svg.bonding-graph[data-direction=rx] "
                    "polyline.bonding-line-total') || {}).getAttribute?.('points') || ''"))


# --- admin -----------------------------------------------------------------------------------

def test_status_page_shows_every_link_and_a_moving_graph(lr: LuciRouter, browser: Browser,
                                                         request: pytest.FixtureRequest) -> None:
    b = browser
    login(b, "admin")
    open_page(b, "/admin/services/bonding/status", STATUS_READY)
    b.wait_js("document.querySelectorAll('#bonding-links-table tr[data-link]').length == 2", 10,
              "both links in the table")
    r = rows(b)
    assert set(r) == {"wan", "wanb"}
    st = lr.status()["paths"]
    for name, cells in r.items():
        assert cells["state"] == st[name]["state"] == "up", cells
        assert re.fullmatch(r"\d+\.\d ms", cells["RTT"]), cells
        assert re.fullmatch(r"\d+\.\d %", cells["Loss"]), cells
        assert "up" in cells["State"]
    # the graph: a point every poll, and it moves
    b.wait_js("(document.querySelector('svg.bonding-graph[data-direction=rx] "
              "polyline.bonding-line-total')?.getAttribute('points') || '').split(' ').length >= 2",
              10, "two points in the graph")
    first = total_points(b)
    b.wait(lambda: total_points(b) != first, 6, "the graph to move")
    assert len(total_points(b).split(" ")) > len(first.split(" "))
    # it draws the probes' traffic: the total is above the floor, at the rate bondingd counts
    ys = [float(pt.split(",")[1]) for pt in total_points(b).split(" ")]
    assert min(ys) < 160, ys
    legend = b.js("document.querySelector('svg.bonding-graph[data-direction=rx]')"
                  ".parentNode.innerText")
    assert re.search(r"Total: [\d.]+ kbit/s", legend), legend
    scale = b.js("document.querySelector('.bonding-graph-box small').innerText")
    assert "scale 0 – " in scale
    lines = b.js("Array.from(document.querySelectorAll('svg.bonding-graph[data-direction=rx] "
                 "polyline')).map(p => p.dataset.series)")
    assert lines == ["wan", "wanb", "Total"]
    assert_clean(b)


def test_the_overview_box_shows_the_links(lr: LuciRouter, browser: Browser) -> None:
    """Status → Overview with our include among luci-mod-status's (whose own calls, of netifd
    and wireless the scratch router lacks, are not ours to count)."""
    b = browser
    open_page(b, "/admin/status/overview",
              "Array.from(document.querySelectorAll('.cbi-section')).some(s => "
              "/Bonding/.test(s.innerText) && /Links up/.test(s.innerText))")
    box = b.js("Array.from(document.querySelectorAll('.cbi-section')).find(s => "
               "/Links up/.test(s.innerText)).innerText")
    assert re.search(r"Links up\s+2 of 2", box), box
    assert_clean(b)


def test_the_details_dialog_shows_each_targets_figures(lr: LuciRouter, browser: Browser) -> None:
    b = browser
    open_page(b, "/admin/services/bonding/status", STATUS_READY)
    b.wait_js("!!document.querySelector('tr[data-link=wan] a.bonding-details')", 10, "wan's row")
    just_polled(b)
    b.click("tr[data-link=wan] a.bonding-details")
    b.wait_js("document.querySelectorAll('.modal table tr').length > 1", 10, "the dialog")
    real = lr.root.ubus("call", "bonding", "path", '{"name":"wan"}')
    cells = b.js("""Array.from(document.querySelectorAll('.modal table tr')).slice(1).map(
        tr => Array.from(tr.querySelectorAll('td')).map(td => td.innerText.trim()))""")
    text = b.js("document.querySelector('.modal').innerText")
    assert "undefined" not in text and "NaN" not in text and "null" not in text, text
    by_addr = {c[0]: c for c in cells}
    assert set(by_addr) == {t["address"] for t in real["targets"]} == \
        {"203.0.113.10", "198.51.100.10"}
    for t in real["targets"]:
        _addr, sent, received, loss, rtt, last, _err = by_addr[t["address"]]
        assert int(sent) > 0 and int(received) > 0, by_addr
        assert re.fullmatch(r"\d+\.\d %", loss), loss  # bondingd's sent and received give it
        assert t["last_rtt_ms"] is not None and re.fullmatch(r"\d+\.\d ms", rtt), (t, rtt)
        assert re.fullmatch(r"\d+\.\d s ago", last), last
    b.click(".modal button.cbi-button")
    b.wait_js("!document.querySelector('body.modal-overlay-active')", 5, "the dialog closed")
    assert_clean(b)


def test_probe_now_says_what_the_probe_found(lr: LuciRouter, browser: Browser) -> None:
    b = browser
    open_page(b, "/admin/services/bonding/status", STATUS_READY)
    b.wait_js("!!document.querySelector('tr[data-link=wanb] button.bonding-probe')", 10,
              "wanb's probe button")
    just_polled(b)
    b.click("tr[data-link=wanb] button.bonding-probe")
    b.wait_js("!!document.querySelector('.bonding-probe-result')", 5, "the probe's result")
    text = b.js("document.querySelector('.bonding-probe-result').innerText")
    assert "wanb" in text and "203.0.113.10" in text and " ms" in text, text
    calls = [c for c in b.rpc_calls() if c.obj == "bonding" and c.method == "probe"]
    assert len(calls) == 1 and calls[0].ok() and calls[0].args == {"name": "wanb"}
    assert_clean(b)


RED_WATCH = """(() => {
    window.__bondingSeen = {};
    const look = () => {
        for (const tr of document.querySelectorAll('#bonding-links-table tr[data-link]')) {
            const key = tr.dataset.link + ':' + tr.dataset.state;
            if (!(key in window.__bondingSeen))
                window.__bondingSeen[key] = Date.now() / 1000;
        }
    };
    new MutationObserver(look).observe(document.body, { subtree: true, childList: true });
    look();
    return true;
})()"""


def test_a_blackholed_link_turns_red_with_its_reason(lr: LuciRouter, browser: Browser,
                                                     request: pytest.FixtureRequest) -> None:
    b = browser
    open_page(b, "/admin/services/bonding/status", STATUS_READY)
    b.wait_js("document.querySelectorAll('#bonding-links-table tr[data-state=up]').length == 2",
              10, "both links up")
    assert b.js(RED_WATCH)
    t_hole = time.time()
    lr.blackhole("isp1")
    try:
        lr.root.wait(lambda: lr.states().get("wan") == "down", 10, "bondingd: wan down")
        declared = lr.status()["paths"]["wan"]
        b.wait_js("'wan:down' in window.__bondingSeen", 5, "wan's row red")
        red_at = b.js("window.__bondingSeen['wan:down']")
        after = red_at - declared["since"]
        cells = rows(b)["wan"]
        assert declared["reason"] and declared["reason"] in cells["Reason"], (declared, cells)
        assert "down" in cells["State"]
        assert cells["RTT"] == "–", cells  # no last RTT shown beside the loss of a dead link
        assert rows(b)["wanb"]["state"] == "up"
        say(request.config, f"blackhole of wan1: bondingd declared wan down "
            f"{declared['since'] - t_hole:.2f} s after the nft drop, LuCI's row red "
            f"{after:.2f} s after that (bar {DOWN_TO_RED_S} s)")
        assert 0 <= after <= DOWN_TO_RED_S, after
    finally:
        lr.unblackhole()
    lr.root.wait(lambda: lr.states().get("wan") == "up", 20, "bondingd: wan up again")
    since = lr.status()["paths"]["wan"]["since"]
    b.wait_js("document.querySelector('tr[data-link=wan]')?.dataset.state == 'up'", 5,
              "wan's row up again")
    say(request.config, f"wan back up: LuCI's row green {b.js('Date.now() / 1000') - since:.2f} s "
        "after bondingd said so (at the latest)")
    assert_clean(b)


def test_save_and_apply_changes_uci_and_bondingd_reloads(lr: LuciRouter,
                                                        browser: Browser) -> None:
    b = browser
    root = lr.root
    before = root.path("/etc/config/bonding").read_text()
    pid = lr.service()["pid"]
    reloads = lr.reloads()
    open_page(b, "/admin/services/bonding/config",
              "!!document.querySelector('.cbi-map') && !!document.querySelector("
              "'.cbi-page-actions .cbi-button-apply')")
    assert b.js("document.querySelector('.cbi-page-actions .cbi-button-apply')"
                ".hasAttribute('disabled')") is False
    b.click("li[data-tab=probing] a")
    field = "#widget\\\\.cbid\\\\.bonding\\\\.globals\\\\.down_count"
    b.wait_js(f"document.querySelector('{field}')?.offsetParent != null", 5, "down_count shown")
    b.js(f"document.querySelector('{field}').value = ''")
    b.type_into(field.replace("\\\\", "\\"), "4")
    b.js(f"document.querySelector('{field}').dispatchEvent(new Event('blur'))")
    b.click(".cbi-page-actions .cbi-button-apply")
    lr.root.wait(lambda: "option down_count '4'" in root.path("/etc/config/bonding").read_text(),
                 30, "down_count 4 in /etc/config/bonding")
    lr.root.wait(lambda: lr.reloads() > reloads, 10, "bondingd to reload")
    assert lr.service()["pid"] == pid, "bondingd was restarted, not reloaded"
    after = root.path("/etc/config/bonding").read_text()
    changed = sorted(set(before.splitlines()) ^ set(after.splitlines()))
    # only what was typed: no option written or dropped because it equals its default
    assert changed == ["\toption down_count '3'", "\toption down_count '4'"], changed
    b.wait_js("!document.querySelector('body.modal-overlay-active')", 30, "LuCI's apply done")
    assert_clean(b)


def test_config_page_shows_the_link_by_device_and_the_default_priority(
        lr: LuciRouter, browser: Browser) -> None:
    b = browser
    open_page(b, "/admin/services/bonding/config", "!!document.querySelector('.cbi-map')")
    b.click("li[data-tab=path] a")
    b.wait_js("!!document.querySelector('#cbi-bonding-wanb')", 5, "wanb's row")
    iface = b.js("document.querySelector('#cbi-bonding-wanb td[data-name=interface]')"
                 ".innerText.trim()")
    assert "wan2" in iface and "unspecified" not in iface, iface
    b.click("li[data-tab=server] a")
    prio = b.js("document.querySelector('#cbi-bonding-vps1 td[data-name=priority]')"
                ".innerText.trim()")
    assert prio.startswith("10"), prio
    assert_clean(b)


def test_with_bondingd_stopped_the_page_renders_and_recovers(lr: LuciRouter,
                                                            browser: Browser) -> None:
    b = browser
    lr.root.sh("/etc/init.d/bonding stop")
    try:
        lr.root.wait(lambda: lr.root.sh("ubus -t 1 list bonding", check=False).returncode != 0,
                     15, "bondingd gone from ubus")
        open_page(b, "/admin/services/bonding/status", "!!document.querySelector('#bonding-down')")
        assert "not running" in b.js("document.querySelector('#bonding-down').innerText")
        # nothing is offered that needs the daemon
        assert b.js("document.querySelector('#bonding-reload')?.disabled ?? true") is True
        down = b.page
        assert_clean(b, allow=lambda c: c.obj == "bonding" and c.method == "status")
    finally:
        lr.root.sh("/etc/init.d/bonding start")
    b.wait_js("document.querySelectorAll('#bonding-links-table tr[data-link]').length == 2", 30,
              "the links back on the same page")
    assert not b.js("!!document.querySelector('#bonding-down')")
    assert b.js("document.querySelector('#bonding-reload').disabled") is False
    lr.root.wait(lambda: lr.states() == {"wan": "up", "wanb": "up"}, 30, "both links up")
    assert_clean(b, down, allow=lambda c: c.obj == "bonding" and c.method == "status"
                 and c.reply is not None and "error" in c.reply)


RULES_READY = ("!!document.querySelector('.cbi-map') && "
               "!!document.querySelector('#cbi-bonding-rule')")


def widget(sid: str, option: str) -> str:
    """The selector of an option's input in LuCI's form (its id has dots)."""
    return f'[id="widget.cbid.bonding.{sid}.{option}"]'


def test_a_rule_added_on_the_rules_page_is_in_uci_and_in_status(lr: LuciRouter,
                                                                 browser: Browser) -> None:
    """Services → Bonding → Rules: a rule typed in its dialog and saved with Save & Apply is in
    /etc/config/bonding as typed, bondingd applies it, and the page shows what it does now."""
    b = browser
    root = lr.root
    open_page(b, "/admin/services/bonding/rules", RULES_READY)
    b.type_into(".cbi-section-create-name", "tvpin")
    b.js("document.querySelector('.cbi-section-create-name').dispatchEvent(new Event('keyup'))")
    b.wait_js("!document.querySelector('.cbi-section-create > .cbi-button-add').disabled", 5,
              "the add button enabled")
    b.click(".cbi-section-create > .cbi-button-add")
    b.wait_js(f"!!document.querySelector('.modal {widget('tvpin', 'action')}')", 10,
              "the rule's dialog")
    # a source address, one entry of the list (typed, then its + button)
    b.type_into(f".modal {widget('tvpin', 'src_ip')}", "192.168.1.77")
    b.click('.modal [id="cbid.bonding.tvpin.src_ip"] .cbi-button-add')
    b.js(f"(() => {{ const s = document.querySelector('.modal {widget('tvpin', 'action')}'); "
         "s.value = 'path:wanb'; s.dispatchEvent(new Event('change')); return true; })()")
    b.js(f"(() => {{ const s = document.querySelector('.modal {widget('tvpin', 'fallback')}'); "
         "s.value = 'drop'; s.dispatchEvent(new Event('change')); return true; })()")
    b.click(".modal .cbi-button-positive")
    b.wait_js("!document.querySelector('body.modal-overlay-active')", 10, "the dialog saved")
    b.click(".cbi-page-actions .cbi-button-apply")
    root.wait(lambda: "bonding.tvpin=rule" in root.sh("uci show bonding").stdout, 30,
              "rule tvpin in /etc/config/bonding")
    shown = {line for line in root.sh("uci show bonding").stdout.splitlines()
             if line.startswith("bonding.tvpin")}
    assert shown == {"bonding.tvpin=rule", "bonding.tvpin.src_ip='192.168.1.77'",
                     "bonding.tvpin.action='path:wanb'", "bonding.tvpin.fallback='drop'"}, shown
    root.wait(lambda: [r["name"] for r in lr.status()["rules"]] == ["tvpin"], 15,
              "bondingd applying rule tvpin")
    rule = lr.status()["rules"][0]
    assert (rule["effective"], rule["why"]) == ("path:wanb", "wanb up"), rule
    b.wait_js("!document.querySelector('body.modal-overlay-active')", 30, "LuCI's apply done")
    # the page shows it, from bondingd's status (after the apply LuCI re-renders the page)
    cell = "#cbi-bonding-tvpin .bonding-rule-now"
    b.wait_js(f"document.querySelector('{cell}')?.dataset.state === 'path:wanb'", 15,
              "the rule's Now cell")
    assert b.js(f"document.querySelector('{cell}').innerText.trim()") == "path:wanb: wanb up"
    assert "table inet bonding_rules" in root.sh("nft list tables").stdout
    assert_clean(b)


# --- the read-only login -----------------------------------------------------------------------

def test_the_viewer_sees_status_no_key_and_cannot_save(lr: LuciRouter, browser: Browser) -> None:
    b = browser
    login(b, "viewer")
    open_page(b, "/admin/services/bonding/status", STATUS_READY)
    b.wait_js("document.querySelectorAll('#bonding-links-table tr[data-link]').length == 2", 10,
              "both links")
    assert b.js("document.querySelectorAll('button.bonding-probe, button.bonding-backup, "
                "#bonding-reload').length") == 0
    assert_no_working_save(b)
    assert_clean(b)
    before = lr.root.path("/etc/config/bonding").read_text()
    open_page(b, "/admin/services/bonding/config", "!!document.querySelector('.cbi-map')")
    html = b.js("document.body.innerHTML")
    assert "cbid.bonding.vps1.key" not in html and "bonding_secrets" not in html
    assert_no_working_save(b)
    assert lr.root.path("/etc/config/bonding").read_text() == before
    assert_clean(b)


def test_the_viewer_sees_the_rules_and_what_they_do_but_cannot_save(lr: LuciRouter,
                                                                    browser: Browser) -> None:
    b = browser
    before = lr.root.path("/etc/config/bonding").read_text()
    open_page(b, "/admin/services/bonding/rules", RULES_READY)
    cell = "#cbi-bonding-tvpin .bonding-rule-now"
    b.wait_js(f"!!document.querySelector('{cell}')", 10, "rule tvpin's row")
    assert b.js(f"document.querySelector('{cell}').innerText.trim()") == "path:wanb: wanb up"
    assert b.js("document.querySelector('.cbi-section-create > .cbi-button-add')?.disabled "
                "?? true") is True
    assert_no_working_save(b)
    assert lr.root.path("/etc/config/bonding").read_text() == before
    assert_clean(b)


ACTIONS = ".cbi-page-actions button, .cbi-page-actions .cbi-dropdown"


def assert_no_working_save(b: Browser) -> None:
    """Save & Apply (a LuCI ComboButton, whose click handler runs even when it is marked
    disabled), Save and Reset: absent, or disabled and doing nothing when clicked (no apply
    dialog, no request to LuCI's apply, no uci call that changes anything)."""
    b.js("""(() => {
        window.__bondingModal = false;
        new MutationObserver(() => {
            if (document.body.classList.contains('modal-overlay-active'))
                window.__bondingModal = true;
        }).observe(document.body, { attributes: true });
        return true;
    })()""")
    n = b.js(f"document.querySelectorAll({json.dumps(ACTIONS)}).length")
    for i in range(n):
        sel = f"#bonding-action-{i}"
        b.js(f"document.querySelectorAll({json.dumps(ACTIONS)})[{i}].id = '{sel[1:]}'")
        assert b.js(f"document.querySelector('{sel}').hasAttribute('disabled')"), sel
        b.click(sel)
    time.sleep(1)
    assert b.js("window.__bondingModal") is False, "a click on a disabled button did something"
    applies = [r.url for r in b.page.requests.values() if "/admin/uci/" in r.url]
    assert applies == [], applies
    writes = [c for c in b.rpc_calls() if c.obj == "uci" and c.method not in ("get", "changes")]
    assert writes == [], writes


def test_pages_render_at_phone_width(lr: LuciRouter, browser: Browser) -> None:
    b = browser
    b.screen(390, 844, mobile=True)
    try:
        open_page(b, "/admin/services/bonding/status", STATUS_READY)
        b.wait_js("document.querySelectorAll('#bonding-links-table tr[data-link]').length == 2",
                  10, "both links")
        assert b.js("document.documentElement.scrollWidth") <= 420
        assert_clean(b)
    finally:
        b.call("Emulation.clearDeviceMetricsOverride")
