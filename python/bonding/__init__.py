"""bonding: bond several internet links into one with Multipath TCP (OpenWrt control plane)."""

__version__ = "0.1.0"
