"""bondingd's parts, one concern each; bonding.daemon wires them and owns the event loop.

- runtime: a path's and each of its address families' live state (health, addresses, probers)
- params: the pure core's parameters, taken from the config's globals
- kernelview: which device, addresses and gateways each path has (rtnetlink + netifd)
- planview: what the planner (bonding.core.plan) is told of each path
- probing: one prober per path and family, kept in step with the path; `probe` waiters
- netifd_bridge: netifd's interfaces over ubus, read once at a time
- samplers: byte counters (sysfs) and MPTCP subflow counts (sock_diag)
- hooks: the user hooks in /etc/hotplug.d/bonding and the ubus events
- status: the `status` / `path` replies and status.json
- handlers: the ubus object's methods (bonding.api checks their arguments)
- checkconfig: `bondingd --check-config`
"""
