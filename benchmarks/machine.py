"""The machine a benchmark ran on, named the same way by every script here: engines rank
differently on different CPUs (BENCHMARKS.md), so every figure goes with its CPU."""

from __future__ import annotations

import os
import platform
import subprocess

ISA = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8")  # what the int8 and bf16 kernels use


def cpu_name() -> str:
    """lscpu's model name with its family and model numbers (a bare "AMD EPYC" covers several
    generations) and the vector extensions present, and the cores this process may use."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}
    name = fields.get("Model name") or platform.processor() or platform.machine()
    flags = set(fields.get("Flags", "").split())
    isa = " ".join(f for f in ISA if f in flags) or ("no AVX2" if flags else "flags unknown")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name} (family {fields.get('CPU family', '?')}, model {fields.get('Model', '?')}; {isa}), {cores} cores"
