"""bondingctl: bondingd's state and controls for people and scripts.

Speaks to the ubus object `bonding` when libubus and ubusd are there; otherwise `status` and
`path` read bondingd's snapshot (<run-dir>/status.json).  A table for people by default,
`--json` for machines.  Exit codes: 0 ok, 1 bondingd unreachable or the call failed, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bonding import __version__

DEFAULT_RUN_DIR = Path("/var/run/bonding")
STATUS_FILE = "status.json"
CALL_TIMEOUT_S = 5.0


class CtlError(Exception):
    pass


# --- transport ------------------------------------------------------------------------------------
def _ubus_call(method: str, args: Mapping[str, Any], socket: str | None,
               timeout: float) -> dict[str, Any] | None:
    """The reply over ubus; None when there is no libubus or no ubusd/`bonding` object."""
    try:
        from bonding.ubus import UbusError, UbusLibraryError, UbusStatus, call
    except ImportError:  # pragma: no cover - ctypes missing on a stripped Python
        return None
    try:
        return call("bonding", method, args, socket=socket, timeout=timeout)
    except UbusLibraryError:
        return None
    except UbusError as e:
        no_daemon = e.status == UbusStatus.NOT_FOUND and e.message == "ubus object 'bonding'"
        if no_daemon or e.status == UbusStatus.CONNECTION_FAILED:
            return None  # no ubusd, or bondingd not registered: use the snapshot
        raise CtlError(_explain(method, args, e)) from None


def _explain(method: str, args: Mapping[str, Any], e: Exception) -> str:
    from bonding.ubus import UbusError, UbusStatus
    if isinstance(e, UbusError):
        if e.status == UbusStatus.NOT_FOUND and "name" in args:
            return f"no path named {args['name']!r}: see `bondingctl status`"
        if e.status == UbusStatus.INVALID_ARGUMENT:
            return f"bondingd refused the arguments of {method}: {dict(args)}"
    return f"ubus call bonding {method}: {e}"


def _snapshot(run_dir: Path) -> dict[str, Any]:
    f = run_dir / STATUS_FILE
    try:
        data: dict[str, Any] = json.loads(f.read_text())
    except FileNotFoundError:
        raise CtlError(f"bondingd is not reachable over ubus and {f} does not exist: "
                       "is bondingd running? (`/etc/init.d/bonding status`)") from None
    except ValueError as e:
        raise CtlError(f"{f} is unreadable: {e}") from None
    data["_source"] = str(f)
    return data


def fetch(method: str, args: Mapping[str, Any], ns: argparse.Namespace) -> dict[str, Any]:
    reply = None if ns.no_ubus else _ubus_call(method, args, ns.socket, ns.timeout)
    if reply is not None:
        return reply
    if method == "status":
        return _snapshot(ns.run_dir)
    if method == "path":
        snap = _snapshot(ns.run_dir)
        p = snap.get("paths", {}).get(args["name"])
        if p is None:
            raise CtlError(f"no path named {args['name']!r} in {snap['_source']}")
        return {"name": args["name"], **p, "_source": snap["_source"]}
    raise CtlError(f"`{method}` needs bondingd over ubus, and it is not reachable "
                   f"({ns.socket or 'default socket'}): is bondingd running?")


# --- formatting -----------------------------------------------------------------------------------
def _rate(bps: Any) -> str:
    if not isinstance(bps, int | float):
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if bps >= div:
            return f"{bps / div:.1f}{unit}"
    return f"{bps:.0f}"


def _age(since: Any, now: float) -> str:
    if not isinstance(since, int | float):
        return "-"
    s = max(0, int(now - since))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _num(v: Any, fmt: str) -> str:
    return "-" if not isinstance(v, int | float) else format(v, fmt)


def _table(cols: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, the header first."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
              for i, c in enumerate(cols)]
    return ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
            for r in (cols, *rows)]


def format_status(st: Mapping[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    paths: Mapping[str, Any] = st.get("paths", {})
    live = sum(1 for p in paths.values() if p.get("state") in ("up", "degraded"))
    head = (f"bondingd {st.get('version', '?')}, up {_age(time.time() - st.get('uptime', 0), now)}"
            f", {len(paths)} paths ({live} carrying traffic)")
    proxy = st.get("proxy")
    if isinstance(proxy, Mapping):
        head += f", proxy {proxy.get('backend', '?')}: {proxy.get('state', '?')}"
        lan6 = proxy.get("ipv6")
        if isinstance(lan6, Mapping) and proxy.get("state") != "disabled":
            head += f", LAN IPv6 {lan6.get('lan', '?')}"
            if lan6.get("reason"):
                head += f" ({lan6['reason']})"
    if st.get("fail_open"):
        head += ", FAIL-OPEN (no path passes its probes)"
    if not st.get("enabled", True):
        head += ", DISABLED"
    lines = [head]
    if "_source" in st:
        lines.append(f"(from {st['_source']}: bondingd not reachable over ubus)")
    active = st.get("active_server")
    if isinstance(active, Mapping):
        lines.append(f"active server: {active.get('name') or 'none'} ({active.get('reason')}); "
                     f"failback {active.get('failback')}, hold {active.get('hold_s')} s")
    servers = st.get("servers", [])
    lines += _table(("SERVER", "STATE", "ADDRESS", "PROTOCOL", "RTT", "SINCE", "REASON"), [
        (str(s.get("name")), str(s.get("state") or ("standby" if s.get("enabled", True)
                                                     else "disabled")),
         f"{s.get('address')}:{s.get('port')}", str(s.get("protocol")),
         _num(s.get("rtt_ms"), ".1f") + ("ms" if s.get("rtt_ms") is not None else ""),
         _age(s.get("since"), now), str(s.get("reason") or ""))
        for s in servers]) if servers else []
    cols = ("PATH", "STATE", "DEVICE", "RTT", "JITTER", "LOSS", "RX", "TX", "SUBFL", "SINCE",
            "REASON")
    rows = []
    for name, p in paths.items():
        state = str(p.get("state", "?"))
        if p.get("backup") and state == "up":
            state = "up/backup"
        if p.get("standby"):
            state += "/standby"  # role backup, standing by: no endpoint, slow probes
        if (p.get("mptcp") or {}).get("blocked") and state.startswith("up"):
            state += "/no-mptcp"
        rows.append((name, state, p.get("device") or "-",
                     _num(p.get("rtt_ms"), ".1f") + ("ms" if p.get("rtt_ms") is not None else ""),
                     _num(p.get("jitter_ms"), ".1f"), _num(p.get("loss_pct"), ".0f") + "%",
                     _rate(p.get("rx_bps")), _rate(p.get("tx_bps")),
                     _num(p.get("subflows"), "d"), _age(p.get("since"), now),
                     p.get("error") or p.get("reason") or _role_note(p)))
    lines += _table(cols, rows)
    rules = st.get("rules") or []
    lines += _table(("RULE", "MATCH", "ACTION", "NOW", "WHY"), [
        (str(r.get("name")), str(r.get("match")),
         str(r.get("action")) + (f" (fallback {r['fallback']})" if r.get("fallback") else "")
         + (", no QUIC" if r.get("block_quic") else ""),
         str(r.get("effective")), str(r.get("why"))) for r in rules]) if rules else []
    rt = st.get("realtime")
    if rt:
        lines.append(f"realtime: {rt.get('path') or 'bonded'} ({rt.get('why')})")
    for name, sh in (st.get("shaping") or {}).items():
        lines.append(f"shaping {name}: " + (sh.get("error") or
                     f"{sh.get('qdisc')} up {sh.get('upload_kbit') or '-'} down "
                     f"{sh.get('download_kbit') or '-'} kbit/s"))
    for title, key in (("config", "config_problems"), ("error", "errors")):
        lines += [f"{title}: {x}" for x in st.get(key, [])]
    return "\n".join(lines)


def _role_note(p: Mapping[str, Any]) -> str:
    """A backup path's standing (why it is used or standing by), for the REASON column."""
    if p.get("role", "bond") == "bond":
        return ""
    return f"{p.get('role')}: {p.get('standby_reason') or ''}".rstrip(": ")


def format_path(p: Mapping[str, Any]) -> str:
    skip = {"targets", "window", "_source", "families"}
    lines = [f"{k}: {v}" for k, v in p.items() if k not in skip]
    if "window" in p:
        lines.append("window: " + "".join("." if w == "ok" else "x" for w in p["window"]))
    families: Mapping[str, Mapping[str, Any]] = p.get("families") or {}
    if families:  # each family's own state, then its probe targets
        for name, f in families.items():
            lines.append(_family_line(name, f))
            lines += [f"  target {_target(t)}" for t in f.get("targets", [])]
    else:
        lines += [f"target {_target(t)}" for t in p.get("targets", [])]
    return "\n".join(lines)


def _target(t: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in t.items())


def _family_line(name: str, f: Mapping[str, Any]) -> str:
    """'ipv6: down (reason), 2001:db8::2 via fe80::1, RTT 21.0ms, loss 0%, endpoint 4, …'."""
    if not f.get("address"):
        return f"{name}: no address"
    state = str(f.get("state", "?")) + (f" ({f['reason']})" if f.get("reason") else "")
    parts = [state, f"{f['address']} via {f.get('gateway') or 'the link'}"]
    if f.get("rtt_ms") is not None:
        parts.append(f"RTT {_num(f['rtt_ms'], '.1f')}ms, loss {_num(f.get('loss_pct'), '.0f')}%")
    parts.append(f"endpoint {f.get('endpoint_id') or '-'}, subflows "
                 f"{_num(f.get('subflows'), 'd')}")
    parts.append("carrying traffic" if f.get("carrying") else "not carrying traffic")
    if not f.get("probed", True):
        parts.append("not probed (no target of its own): follows the other family")
    return f"{name}: " + ", ".join(parts)


# --- command line ---------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bondingctl", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    p.add_argument("-s", "--socket", help="ubusd socket (default: libubus's)")
    p.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR,
                   help="where bondingd writes status.json (default: %(default)s)")
    p.add_argument("--no-ubus", action="store_true", help="read status.json, do not use ubus")
    p.add_argument("-t", "--timeout", type=float, default=CALL_TIMEOUT_S,
                   help="ubus call timeout in seconds (default: %(default)s)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sub.add_parser("status", help="every server (active, standby, down) and every path: state, "
                                  "reason, RTT, loss, rates, subflows")
    sp = sub.add_parser("path", help="one path in detail, with per-target probe results")
    sp.add_argument("name")
    sp = sub.add_parser("set-path", help="enable/disable a path or force it to backup "
                                         "(until the next reload)")
    sp.add_argument("name")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--enable", dest="enabled", action="store_true", default=None)
    g.add_argument("--disable", dest="enabled", action="store_false")
    g2 = sp.add_mutually_exclusive_group()
    g2.add_argument("--backup", dest="backup", action="store_true", default=None)
    g2.add_argument("--no-backup", dest="backup", action="store_false")
    sp = sub.add_parser("probe", help="probe a path now and show the result")
    sp.add_argument("name")
    sub.add_parser("reload", help="re-read /etc/config/bonding")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    ns = parser.parse_args(argv)
    args: dict[str, Any] = {}
    method = ns.cmd.replace("-", "_")
    if ns.cmd in ("path", "set-path", "probe"):
        args["name"] = ns.name
    if ns.cmd == "set-path":
        if ns.enabled is None and ns.backup is None:
            parser.error("set-path: give --enable/--disable and/or --backup/--no-backup")
        args.update({k: getattr(ns, k) for k in ("enabled", "backup")
                     if getattr(ns, k) is not None})
    try:
        reply = fetch(method, args, ns)
    except CtlError as e:
        print(f"bondingctl: {e}", file=sys.stderr)
        return 1
    if ns.json:
        reply.pop("_source", None)
        print(json.dumps(reply, indent=2, sort_keys=False))
    elif method == "status":
        print(format_status(reply))
    elif method in ("path", "probe"):
        print(format_path(reply))
    else:
        print(" ".join(f"{k}={json.dumps(v)}" for k, v in reply.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
