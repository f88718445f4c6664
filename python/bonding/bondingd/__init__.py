"""bondingd's parts, one concern each; bonding.daemon wires them and owns the event loop.

- runtime: a path's and each of its address families' live state (health, addresses, probers)
- pathset: the paths bondingd runs (the config's path sections, or netifd's WAN interfaces)
- configload: the config in use: (re)load keeping the last good one, log level, key pruning
- params: the pure core's parameters, taken from the config's globals
- transitions: a path's health changes (link news, probe rounds): logs, events, hooks, replan
- kernelview: which device, addresses and gateways each path has (rtnetlink + netifd)
- planview: what the planner (bonding.core.plan) is told of each path
- probing: one prober per path and family, kept in step with the path; `probe` waiters
- netifd_bridge: netifd's interfaces over ubus, read once at a time
- samplers: byte counters (sysfs) and MPTCP subflow counts (sock_diag)
- hooks: the user hooks in /etc/hotplug.d/bonding and the ubus events
- status: the `status` reply, each path's in `status` / `path`, and status.json
- handlers: the ubus object's methods (bonding.api checks their arguments)
- checkconfig: `bondingd --check-config`
"""
