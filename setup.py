"""C accelerators for the offline paths (pcap and iptables-log parsing).

Each module is optional at run time only in the sense that a clear error names the fix
(`make setup`); the pure-Python reference implementations live beside them for tests.
"""

import os

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
CANDIDATES = {
    "tcpwatch.pcap._pcapcore": "tcpwatch/pcap/_pcapcore.c",
    "tcpwatch.iplog._iplogcore": "tcpwatch/iplog/_iplogcore.c",
}

ext_modules = [
    Extension(name, [src], extra_compile_args=["-O2", "-std=c11", "-Wall"])
    for name, src in CANDIDATES.items()
    if os.path.exists(os.path.join(HERE, src))
]

setup(ext_modules=ext_modules)
