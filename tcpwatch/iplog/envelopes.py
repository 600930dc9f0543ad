"""Line envelopes around a LOG message: what each syslog/journal/dmesg flavour puts in front.

Pure-Python reference (the C tokenizer mirrors these rules byte for byte):

  kmsg       `6,1234,5678901,-;MSG`                       /dev/kmsg: level, seq, usec since boot
  rfc5424    `<4>1 2024-04-26T15:27:36.12Z host kernel - - - MSG`
  rfc3339    `[<4>]2024-04-26T15:27:36.123456+02:00 host kernel: MSG`   (rsyslog, journalctl -o short-iso)
  syslog     `[<4>]Apr 26 15:27:36[.123456] host kernel: MSG`            (classic, journalctl short; year inferred)
  dmesg-T    `[Sat Apr 26 15:27:36 2024] MSG`
  dmesg      `[ 1234.567890] MSG`                         (uptime only)
  bare       `MSG`                                        (dmesg -t, nft monitor, a copied line)

After `host `, the tag `kernel: ` / `ulogd[pid]: ` is optional (ulogd LOGEMU writes none), and a
printk time `[ 1234.567890] ` may follow it. journalctl -o json is turned into rfc3339 lines by
the reader. Local times without an offset are flagged (ts_local) and converted by the reader.
"""

from __future__ import annotations

import re

from .grammar import LineError

MONTHS = {m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}
_MON = "(" + "|".join(MONTHS) + ")"
_DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_KMSG = re.compile(r"([0-9]+),([0-9]+),([0-9]+),[^;]*;")
_PRI = re.compile(r"<([0-9]{1,3})>")
_RFC5424 = re.compile(r"1 ([^ ]+) ([^ ]+) [^ ]+ [^ ]+ [^ ]+ (?:-|(?:\[[^\]]*\])+) ?")
_ISO = (r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
        r"(Z|[+-][0-9]{2}:?[0-9]{2})?")
_RFC3339 = re.compile(_ISO + " ")
_ISO_TOKEN = re.compile(_ISO)
_CLASSIC = re.compile(_MON + r" ([ 0-9][0-9]) ([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)? ")
_DMESG_T = re.compile(r"\[" + _DAY + " " + _MON + r" ([ 0-9][0-9]) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([0-9]{4})\] ")
_UPTIME = re.compile(r"\[ *([0-9]+\.[0-9]{6})\] ")
_HOST = re.compile(r"([^ ]+) ")
_TAG = re.compile(r"(?:kernel|ulogd)(?:\[[0-9]*\])?: ")


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _clock(y: int, mo: int, d: int, h: int, mi: int, s: int, frac: str | None, offset_s: int) -> float:
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h <= 23 and mi <= 59 and s <= 60):
        raise LineError("bad timestamp in envelope")
    whole = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset_s
    return whole + (float("0" + frac[:1020]) if frac else 0.0)


def _iso(m: re.Match) -> tuple[float, bool]:
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    tz = m.group(8)
    offset = 0
    if tz and tz != "Z":
        digits = tz[1:].replace(":", "")
        offset = (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * (1 if tz[0] == "+" else -1)
    return _clock(y, mo, d, h, mi, s, m.group(7), offset), tz is None


def parse_envelope(line: str, ref_year: int, ref_month: int) -> tuple[dict, str]:
    """Split a line into its envelope columns and the kernel message."""
    env: dict = {}
    pos = 0
    m = _KMSG.match(line)
    if m:
        usec = m.group(3)
        if len(usec) > 20 or int(usec) > 0xFFFFFFFFFFFFFFFF:
            raise LineError("bad timestamp in envelope")
        env.update(envelope="kmsg", level=int(m.group(1)) & 7, uptime=int(usec) / 1e6)
        return env, line[m.end():]
    m = _PRI.match(line)
    if m:
        env["level"] = int(m.group(1)) & 7
        pos = m.end()
    m = _RFC5424.match(line, pos) if m else None
    if m:
        env["envelope"] = "rfc5424"
        stamp, host = m.group(1), m.group(2)
        if stamp != "-":
            t = _ISO_TOKEN.fullmatch(stamp)
            if t is None:
                raise LineError("bad timestamp in envelope")
            env["ts"], env["ts_local"] = _iso(t)
        if host != "-":
            env["host"] = host
        return env, _after_tag(line, m.end(), env)
    m = _RFC3339.match(line, pos)
    if m:
        env["envelope"] = "rfc3339"
        env["ts"], env["ts_local"] = _iso(m)
        return env, _after_host(line, m.end(), env)
    m = _CLASSIC.match(line, pos)
    if m:
        mo = MONTHS[m.group(1)]
        year = ref_year - (mo > ref_month)
        env["envelope"] = "syslog"
        env["ts"] = _clock(year, mo, int(m.group(2)), int(m.group(3)), int(m.group(4)),
                           int(m.group(5)), m.group(6), 0)
        env["ts_local"] = True
        return env, _after_host(line, m.end(), env)
    m = _DMESG_T.match(line, pos)
    if m:
        env["envelope"] = "dmesg-T"
        env["ts"] = _clock(int(m.group(6)), MONTHS[m.group(1)], int(m.group(2)), int(m.group(3)),
                           int(m.group(4)), int(m.group(5)), None, 0)
        env["ts_local"] = True
        return env, line[m.end():]
    m = _UPTIME.match(line, pos)
    if m:
        env.update(envelope="dmesg", uptime=float(m.group(1)))
        return env, line[m.end():]
    env["envelope"] = "bare"
    return env, line[pos:]


def _after_host(line: str, pos: int, env: dict) -> str:
    m = _HOST.match(line, pos)
    if m is None:
        raise LineError("no host after the timestamp")
    env["host"] = m.group(1)
    return _after_tag(line, m.end(), env)


def _after_tag(line: str, pos: int, env: dict) -> str:
    m = _TAG.match(line, pos)
    if m:
        pos = m.end()
    m = _UPTIME.match(line, pos)
    if m:
        env["uptime"] = float(m.group(1))
        pos = m.end()
    return line[pos:]
