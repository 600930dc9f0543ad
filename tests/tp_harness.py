"""Runs the BPF program's tracepoint-reading helpers as a plain C program (gcc), on a record
laid out by a format file: how the unit tests check layouts of kernels this machine is not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tcpwatch.live.header import HEADER, event_dtype
from tcpwatch.live.program import tracepoint_struct

BPF_DIR = Path(HEADER).parent

PROGRAM = r"""
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
typedef uint8_t __u8; typedef int8_t __s8; typedef uint16_t __u16; typedef int16_t __s16;
typedef uint32_t __u32; typedef int32_t __s32; typedef uint64_t __u64; typedef int64_t __s64;
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define bpf_probe_read_kernel(d, n, s) memcpy((d), (s), (n))
#define bpf_htonl htonl
#define bpf_ntohs ntohs
#include "tcpwatch.h"
%(struct)s
#include "tcpwatch_tp.h"
int main(void) {
    unsigned char rec[256] = {0};
    struct tw_event e;
    memset(&e, 0, sizeof e);
    if (fread(rec, 1, sizeof rec, stdin) == 0) return 1;
    struct tp_%(tp)s *a = (struct tp_%(tp)s *)rec;
    %(body)s
    fwrite(&e, sizeof e, 1, stdout);
    return 0;
}
"""


def read_record(tmp_path: Path, fmt, record: bytes, body: str):
    """Compile `body` (C statements filling `e` from the tracepoint record `a`) and run it."""
    if not shutil.which("gcc"):
        pytest.skip("gcc missing")
    src, exe = tmp_path / "h.c", tmp_path / "h"
    src.write_text(PROGRAM % {"struct": tracepoint_struct(fmt), "tp": fmt.name, "body": body})
    subprocess.run(["gcc", "-O1", "-Wall", "-Werror", "-Wno-unused-function", f"-I{BPF_DIR}", "-o", str(exe),
                    str(src)], check=True, capture_output=True)
    out = subprocess.run([str(exe)], input=record, capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype=event_dtype())[0]
