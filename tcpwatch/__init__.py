"""tcpwatch: who reset this TCP connection, and why; what is being retransmitted.

The public API is imported lazily so `import tcpwatch` stays light (no bcc, pandas, scapy).
"""

__version__ = "0.1.0"

_API = {
    "capture": ("tcpwatch.live.api", "capture"),
    "stream": ("tcpwatch.live.api", "stream"),
    "read_pcap": ("tcpwatch.pcap.api", "read_pcap"),
    "read_iptables_log": ("tcpwatch.iplog.api", "read_iptables_log"),
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name):
    if name in _API:
        import importlib

        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'tcpwatch' has no attribute {name!r}")
