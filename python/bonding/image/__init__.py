"""bonding-image: a server's client entry → an OpenWrt firmware that comes up bonded.

`cli` parses the flags, `client` reads `bonding-server add-client` output, `packages` is the
flag → package table per release, `setup_script` writes the first-boot uci-defaults script and
`build` the ASU request, the imagebuilder script and the output folder.
"""
