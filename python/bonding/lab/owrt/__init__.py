"""An OpenWrt-shaped router root from the real OpenWrt userland (OWRT_PREFIX, built by
tools/owrt-userland.sh): the lab's router with `bonding-lab up --openwrt`, and the scratch
roots of tests/owrt.  `root` (PID 1 and what runs and is read in the root; `init` is that PID
1), `userland` (what goes into it), `dhcp` (the ISPs' udhcpd), `lab` (the lab's router on it)."""
