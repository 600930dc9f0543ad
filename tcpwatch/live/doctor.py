"""Prerequisites of live capture, each a check with the fix for when it fails.

`tcpwatch doctor` prints them all; a live command runs them first and stops at the first
that fails with exit code 2 and that check's one-line cause and fix.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Callable

from ..errors import EnvironmentProblem


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _root() -> Check:
    ok = os.geteuid() == 0
    return Check("root", ok, "running as root" if ok else f"running as uid {os.geteuid()}",
                 "run with sudo (loading BPF programs needs CAP_BPF and CAP_PERFMON)")


def _tracefs() -> Check:
    from .tracefs import roots

    for root in roots():
        if os.path.isdir(os.path.join(root, "events")):
            return Check("tracefs", True, f"mounted at {root}")
    return Check("tracefs", False, "not mounted", "mount -t tracefs nodev /sys/kernel/tracing")


def _btf() -> Check:
    from .btf import VMLINUX

    ok = os.path.exists(VMLINUX)
    return Check("kernel BTF", ok, VMLINUX if ok else "absent",
                 "use a kernel built with CONFIG_DEBUG_INFO_BTF=y")


def _bcc() -> Check:
    try:
        import bcc  # noqa: F401
    except Exception as err:
        return Check("bcc", False, f"cannot import bcc ({type(err).__name__})",
                     "apt-get install python3-bpfcc, and use a venv made with --system-site-packages (make setup)")
    return Check("bcc", True, f"bcc from {os.path.dirname(bcc.__file__)}")


def _headers() -> Check:
    path = f"/lib/modules/{platform.release()}/build"
    ok = os.path.exists(path)
    return Check("kernel headers", ok, os.path.realpath(path) if ok else f"{path} missing",
                 "make setup (installs linux-headers and links them as the build directory)")


def _tracepoint(category: str, name: str, required: bool, raw: str = "") -> Callable[[], Check]:
    def check() -> Check:
        from .tracefs import roots

        for root in roots():
            if os.path.exists(os.path.join(root, "events", category, name, "format")):
                return Check(f"tracepoint {category}:{name}", True, "present" + raw)
        return Check(f"tracepoint {category}:{name}", False, "missing on this kernel",
                     "a kernel >= 4.16 has it" if required else "optional: the events it gives are not captured")
    return check


def _ringbuf() -> Check:
    major, minor = (int(x) for x in platform.release().split(".")[:2])
    ok = (major, minor) >= (5, 8)
    return Check("BPF ring buffer", ok, f"kernel {major}.{minor}" + ("" if ok else ": perf buffer fallback"),
                 "none needed: tcpwatch falls back to a perf buffer")


def _kprobes() -> Check:
    lockdown = "unknown"
    try:
        with open("/sys/kernel/security/lockdown") as f:
            lockdown = f.read().strip()
    except OSError:
        pass
    return Check("kprobes/fentry", False, f"not used by tcpwatch (lockdown: {lockdown})",
                 "none needed: tcpwatch uses only tracepoints and raw tracepoints")


BASE_CHECKS = (_root, _tracefs, _btf, _bcc, _headers)


def all_checks() -> list[tuple[Check, bool]]:
    """Every check, with whether live capture cannot run without it."""
    checks = [(c(), True) for c in BASE_CHECKS]
    from .probes import PROBES, context_from_lock

    facts = _kernel_facts()
    # Reset probes are required, and the core (softirq) probes where the socket's lock cannot
    # tell whether a task acts on it; the others degrade (their events are not captured).
    core_needed = facts is None or not context_from_lock(facts)
    required_of: dict[tuple[str, str], bool] = {}
    for probe in PROBES:   # a tracepoint several groups use is checked once
        key = (probe.category, probe.name)
        required_of[key] = required_of.get(key, False) or probe.group == "resets" or (
            probe.group == "core" and core_needed)
    raw = _raw_forms(PROBES, facts)
    if not core_needed:
        raw.update({p.name: raw.get(p.name, "") + ", not needed here (the socket's lock tells the owner's context)"
                    for p in PROBES if p.group == "core"})
    for (category, name), required in required_of.items():
        checks.append((_tracepoint(category, name, required, raw.get(name, ""))(), required))
    checks += [(_ringbuf(), False), (_kprobes(), False)]
    return checks


def _kernel_facts() -> dict | None:
    try:
        from .kernel_facts import kernel_facts

        return kernel_facts()
    except Exception:       # no BTF: reported by its own check
        return None


def _raw_forms(probes, facts: dict | None) -> dict[str, str]:
    """Tracepoint -> what the doctor adds about its cheaper forms on this kernel: raw (no trace
    record is built), and as a BTF tracepoint (direct reads); or why only the tracepoint."""
    from .probes import btf_functions, why_not_raw

    if facts is None:
        return {}
    out = {}
    for probe in probes:
        if probe.raw is None or probe.name in out:
            continue
        why = why_not_raw(probe, facts)
        if why is None:
            btf = btf_functions([probe], facts, {probe.function})
            out[probe.name] = ", raw form usable" + (" (as a BTF tracepoint)" if btf else "")
        else:
            out[probe.name] = f", tracepoint form only ({why})"
    return out


def require_live() -> None:
    """Raise EnvironmentProblem naming the first missing prerequisite of live capture."""
    for make in BASE_CHECKS:
        check = make()
        if not check.ok:
            raise EnvironmentProblem(f"{check.name}: {check.detail}", check.fix)
