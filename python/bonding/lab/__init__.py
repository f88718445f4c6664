"""The lab: the whole bonding setup built in network namespaces on one Linux machine."""
