"""What this CPU can do, read once from /proc/cpuinfo (torch-free, so benchmarks and
set-up can ask too). Machines of one kind differ: Intel with AMX bf16, AMD without."""
from __future__ import annotations

import os
import platform
from functools import lru_cache

BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
INT8_DOT_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8"}  # int8 dot products in one instruction


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() not in fields:
                    fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_flags() -> set[str]:
    return set(_cpuinfo().get("flags", "").split())


def native_bf16_cpu() -> bool:
    """bf16 matmuls are only faster than float32 where the hardware does them."""
    return bool(BF16_FLAGS & cpu_flags())


def native_int8_cpu() -> bool:
    """int8 matmuls (torch's `_int_mm`, what W8A8 runs on) beat float32 only with VNNI or
    AMX: on an AVX2-only AMD EPYC a k = 50 request took 7-10 s in int8 against 0.3 s in
    float32."""
    return bool(INT8_DOT_FLAGS & cpu_flags())


def available_cpus() -> int:
    """CPUs this process may run on (its affinity, as OpenMP counts them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_name() -> str:
    """Model, core count, and whether bf16 and int8 products are native: printed beside
    every benchmark's figures."""
    model = _cpuinfo().get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    bf16 = "native bf16 (AVX512-BF16/AMX)" if native_bf16_cpu() else "no native bf16"
    int8 = "int8 dot products (VNNI/AMX)" if native_int8_cpu() else "no VNNI (int8 slower than float32)"
    return f"{model}, {os.cpu_count()} cores, {bf16}, {int8}"
