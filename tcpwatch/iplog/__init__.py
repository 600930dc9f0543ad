"""iptables/nftables/ulogd LOG lines: parser (api), capture check (verify), offline replay (replay), rules helper (rules)."""
