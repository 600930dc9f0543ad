"""Live capture from the kernel: BPF programs on tracepoints, loaded with bcc."""
