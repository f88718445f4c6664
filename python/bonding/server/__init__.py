"""bonding-server: the aggregation server (ss-server under mptcpize, one per client).

Modules: ``model`` (records, validation, the client's UCI), ``store`` (the state directory,
atomic writes), ``plan`` (firewall, shaping, units, ss-server config as data), ``system``
(the host: commands, sysctls, nft, tc, systemd), ``service`` (the operations), ``supervisor``
(`run` without systemd) and ``cli`` (the command line).
"""
