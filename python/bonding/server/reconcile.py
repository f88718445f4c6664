"""Reconciling the host with the stored settings: the facts gathered, and the steps (firewall,
shaping, proxy configs, systemd unit) that bring the host to them.

service.init, apply and add/remove a client run :func:`reconcile`; it takes a host
(:class:`~bonding.server.system.Host` or a fake) and returns the steps and whether each changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bonding.server import congestion, guard, plan
from bonding.server.model import Client, ServerConfig, ServerError, proxy_user
from bonding.server.store import Store, atomic_unlink, atomic_write
from bonding.server.system import INSTALL_HINT, HostAPI

PROXY_TOOLS = {"sing-box": ("sing-box",), "shadowsocks-libev": ("ss-server", "mptcpize")}
KERNEL_TOOLS = ("nft", "tc", "ip")
PROBE_USER = "nobody"  # stands for the proxies' users when checking who may run a program


@dataclass(frozen=True)
class Step:
    """One item of the wanted state: whether it had to change, and how."""

    what: str
    changed: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"step": self.what, "changed": self.changed, "detail": self.detail}


@dataclass
class Outcome:
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.steps)


def require_tools(host: HostAPI, tools: Sequence[str]) -> dict[str, str]:
    found = {t: host.which(t) for t in tools}
    missing = [t for t, p in found.items() if p is None]
    if missing:
        raise ServerError("missing: " + ", ".join(
            f"{t} ({INSTALL_HINT.get(t, 'install it')})" for t in missing))
    return {t: str(p) for t, p in found.items()}


def gather_facts(host: HostAPI, store: Store, cfg: ServerConfig, *,
                 need_proxy_tools: bool = True) -> plan.Facts:
    tools = require_tools(host, PROXY_TOOLS[cfg.proxy]) if need_proxy_tools else {}
    for program in tools.values():
        # every proxy user is a fresh system user with a group of its own: what nobody may
        # run, none of them may
        why = host.exec_problem(program, PROBE_USER)
        if why is not None:
            raise ServerError(
                f"the proxies run as unprivileged users ({cfg.user}-PORT), who cannot run "
                f"{program}: {why}; install it where every user can reach it (such as "
                "/usr/local/bin) or let every user enter that directory")
    interface = cfg.interface or host.default_interface()
    return plan.Facts(
        uids=(), interface=interface, networks=tuple(host.connected_networks()),
        nameservers=tuple(host.nameservers()), ipv6=host.ipv6(),
        state_dir=str(store.root.resolve()),
        exe=host.which("bonding-server") or "/usr/bin/bonding-server",
        ss_server=tools.get("ss-server", "/usr/bin/ss-server"),
        mptcpize=tools.get("mptcpize", "/usr/bin/mptcpize"),
        sing_box=tools.get("sing-box", "/usr/bin/sing-box"))


# --- the wanted state -----------------------------------------------------------------------------
def reconcile(host: HostAPI, store: Store, cfg: ServerConfig, clients: Sequence[Client],
              facts: plan.Facts) -> list[Step]:
    """Make the kernel (and systemd) match the plan; change only what differs.  Hold the lock."""
    steps: list[Step] = []
    for key, want in plan.SYSCTLS.items():
        have = host.sysctl_get(key)
        if have == want:
            steps.append(Step(f"sysctl {key}", False, want))
        else:
            host.sysctl_set(key, want)
            steps.append(Step(f"sysctl {key}", True, f"{have} → {want}"))

    have_limits = host.mptcp_limits()
    want_limits = dict(plan.MPTCP_LIMITS)
    if all(have_limits.get(k) == v for k, v in want_limits.items()):
        steps.append(Step("mptcp limits", False, _fmt_limits(want_limits)))
    else:
        host.set_mptcp_limits(want_limits)
        steps.append(Step("mptcp limits", True,
                          f"{_fmt_limits(have_limits)} → {_fmt_limits(want_limits)}"))

    step, facts = _users(host, cfg, clients, facts)
    steps.append(step)
    applied = store.load_applied()
    steps.append(_firewall(host, cfg, clients, facts, applied))
    store.save_applied(applied)
    steps.append(_shaping(host, clients, facts, applied))
    store.save_applied(applied)
    steps.append(congestion_step(host, cfg, clients, facts))
    steps.append(_proxy_configs(store, cfg, clients, facts))
    if cfg.systemd:
        steps += _systemd(host, cfg, clients, facts)
    return steps


def user_dropin_path(name: str) -> str:
    return f"{plan.UNIT_DIR}/{plan.unit_name(name)}.d/user.conf"


def user_dropins(cfg: ServerConfig, clients: Sequence[Client]) -> dict[str, str]:
    """Per client, the drop-in that runs its unit as its own user (the template's User= is
    only the prefix, a user that does not exist: a unit without its drop-in does not start)."""
    return {user_dropin_path(c.name): "# bonding-server: this client's own proxy user\n"
            f"[Service]\nUser={proxy_user(cfg.user, c)}\n" for c in clients}


def _users(host: HostAPI, cfg: ServerConfig, clients: Sequence[Client],
           facts: plan.Facts) -> tuple[Step, plan.Facts]:
    """One system user per client (created when missing); the facts then hold their uids."""
    created, uids = [], []
    for c in clients:
        user = proxy_user(cfg.user, c)
        uid = host.uid(user)
        if uid is None:
            host.create_user(user)
            created.append(user)
            uid = host.uid(user)
            if uid is None:
                raise ServerError(f"user {user!r} was created but cannot be looked up")
        if uid == 0:
            raise ServerError(f"user {user!r} has uid 0: remove it (userdel {user}); "
                              "a proxy must not run as root")
        uids.append(uid)
    if len(set(uids)) != len(uids):
        raise ServerError("two clients' proxy users share a uid: give each of "
                          f"{cfg.user}-PORT a uid of its own (usermod -u)")
    detail = (f"created {', '.join(created)}" if created else
              f"{len(clients)} proxy user(s) {cfg.user}-PORT")
    return Step("proxy users", bool(created), detail), replace(facts, uids=tuple(uids))


def _fmt_limits(limits: dict[str, int]) -> str:
    return " ".join(f"{k} {v}" for k, v in sorted(limits.items())) or "unknown"


def _firewall(host: HostAPI, cfg: ServerConfig, clients: Sequence[Client], facts: plan.Facts,
              applied: dict[str, Any]) -> Step:
    want = plan.nft_table(cfg, clients, facts)
    want_hash = plan.digest(want)
    what = f"firewall (nft table inet {plan.NFT_TABLE})"
    have = host.nft_listing()
    if have is not None and applied.get("nft_plan") == want_hash and \
            applied.get("nft_listing") == have:
        return Step(what, False, f"{len(clients)} client(s)")
    counters = host.nft_counters()  # carried over into the new table
    host.nft_apply(plan.nft_script(plan.nft_table(cfg, clients, facts, counters)))
    applied["nft_plan"] = want_hash
    applied["nft_listing"] = host.nft_listing()
    return Step(what, True, ("created" if have is None else "rewritten") +
                f" for {len(clients)} client(s), proxies run as uid(s) "
                f"{', '.join(map(str, facts.uids)) or 'none'}")


def _shaping(host: HostAPI, clients: Sequence[Client], facts: plan.Facts,
             applied: dict[str, Any]) -> Step:
    limited = [c for c in clients if c.rate_mbit is not None]
    old_dev = applied.get("tc_dev")
    if not limited:
        if old_dev and (host.link_exists(old_dev) and host.tc_ours(old_dev)):
            host.tc_teardown(old_dev)
            applied.pop("tc_dev", None)
            applied.pop("tc_plan", None)
            applied.pop("tc_listing", None)
            return Step("shaping", True, f"removed from {old_dev} (no client has a limit)")
        return Step("shaping", False, "no client has a rate limit")
    dev = facts.interface
    if dev is None:
        raise ServerError("rate limits need the egress interface and there is no default "
                          "route: run `bonding-server init --interface DEV`")
    if not host.link_exists(dev):
        raise ServerError(f"interface {dev!r} does not exist: run `bonding-server init "
                          "--interface DEV` with the device that faces the clients")
    lines = plan.tc_commands(clients, dev, facts.ipv6)
    want_hash = plan.digest("\n".join(lines))
    have = host.tc_listing(dev)
    detail = ", ".join(f"{c.name} {c.rate_mbit:g}" for c in limited) + f" Mbit/s on {dev}"
    if (old_dev == dev and applied.get("tc_plan") == want_hash
            and applied.get("tc_listing") == have):
        return Step("shaping", False, detail)
    if old_dev and old_dev != dev and host.link_exists(old_dev):
        host.tc_teardown(old_dev)
    host.tc_teardown(dev)
    applied.pop("tc_dev", None)
    try:
        host.tc_build(dev, lines)
    except ServerError:
        host.tc_teardown(dev)
        raise
    applied.update(tc_dev=dev, tc_plan=want_hash, tc_listing=host.tc_listing(dev))
    return Step("shaping", True, detail + f" (htb per client, upload through {plan.IFB})")


def congestion_step(host: HostAPI, cfg: ServerConfig, clients: Sequence[Client],
                    facts: plan.Facts) -> Step:
    """The clients' routes with the congestion control locked (bonding.server.congestion):
    copied again when the main table changed or the copy was tampered with."""
    cc, ports = cfg.congestion_control, [c.port for c in clients]
    what = f"congestion control (table {congestion.TABLE})"
    changed = []
    for family in (4, 6) if facts.ipv6 else (4,):
        main = host.ip_json(family, "route", "show", "table", "main")
        rules = [r for r in host.ip_json(family, "rule", "show")
                 if r.get("priority") == congestion.RULE_PREF]
        table = host.ip_json(family, "route", "show", "table", str(congestion.TABLE))
        if congestion.have(table, rules) == congestion.wanted(main, cc, ports):
            continue
        try:
            host.ip_batch(family, congestion.batch(main, cc, ports, len(rules)))
        except ServerError as e:
            if "congestion" not in str(e):
                raise
            raise ServerError(f"{e}: congestion control {cc!r} for the clients' connections "
                              f"is not in this kernel: load it (modprobe tcp_{cc}) or run "
                              "`bonding-server init --congestion-control ''` to keep the "
                              "host's default") from None
        changed.append(f"IPv{family}")
    detail = (f"{cc} locked on the routes of {len(ports)} client port(s)" if cc and ports else
              "the host's default" if not cc else "no client")
    return Step(what, bool(changed), detail + (f" ({', '.join(changed)} copied)"
                                               if changed else ""))


def _proxy_configs(store: Store, cfg: ServerConfig, clients: Sequence[Client],
                   facts: plan.Facts) -> Step:
    changed = []
    suffix = plan.config_suffix(cfg.proxy)
    wanted = {store.proxy_config_path(c.name, suffix): plan.proxy_config(cfg.proxy, c,
                                                                         facts.ipv6)
              for c in clients}
    for path, data in wanted.items():
        try:
            same = path.read_bytes() == data
        except FileNotFoundError:
            same = False
        if not same:
            atomic_write(path, data)
            changed.append(path.name)
    for p in store.proxy_config_paths():
        if p not in wanted:
            atomic_unlink(p)
            changed.append(f"-{p.name}")
    return Step("proxy configs", bool(changed), ", ".join(changed) or f"{len(wanted)} up to date")


def _systemd(host: HostAPI, cfg: ServerConfig, clients: Sequence[Client],
             facts: plan.Facts) -> list[Step]:
    steps = []
    written = []
    files = {**plan.units(cfg, facts), **guard.unit(facts), **user_dropins(cfg, clients)}
    for path, text in files.items():
        data = text.encode()
        if host.read_file(path) != data:
            host.write_file(path, data, 0o644)
            written.append(path)
        steps.append(Step(f"file {path}", path in written))
    if written:
        host.systemctl("daemon-reload")
        steps.append(Step("systemctl daemon-reload", True))
    for unit, now in ((plan.SERVICE, ()), (guard.UNIT, ("--now",))):
        enabled = host.systemctl("is-enabled", unit, check=False).strip()
        if enabled != "enabled":
            host.systemctl("enable", *now, unit)
            steps.append(Step(f"enable {unit}", True, f"{enabled or 'unknown'} → enabled"))
        else:
            steps.append(Step(f"enable {unit}", False))
    if written and f"{plan.UNIT_DIR}/{guard.UNIT}" in written:
        host.systemctl("try-restart", guard.UNIT)
    return steps

