"""Native bf16 detection on CPU: torch's probes, else the flags of /proc/cpuinfo; the warning follows it."""

from __future__ import annotations

import io

import pytest
import torch

from clipgauge.scoring import device


def _cpuinfo(flags: str):
    text = f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n"
    return lambda *a, **k: io.StringIO(text)


@pytest.mark.parametrize(("flags", "native"), [
    ("fpu sse avx2 fma", False),                        # AMD EPYC, AVX2 only: emulated
    ("avx2 avx512f avx512bw avx512_vnni", False),       # AVX-512 without BF16
    ("avx2 avx512f avx512_bf16", True),                 # Cooper Lake / Zen 4
    ("avx2 avx512f amx_tile amx_bf16 amx_int8", True),  # Sapphire Rapids
])
def test_cpuinfo_flags_decide_where_torch_has_no_probe(monkeypatch, flags, native):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.setattr(device, "open", _cpuinfo(flags), raising=False)
    assert device.cpu_has_native_bf16() is native
    warning = device.precision_warning("bf16", torch.device("cpu"))
    assert (warning is None) == native
    assert native or "no native bf16" in warning


def test_unknown_when_neither_probe_nor_cpuinfo(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)

    def missing(*a, **k):
        raise FileNotFoundError("/proc/cpuinfo")

    monkeypatch.setattr(device, "open", missing, raising=False)
    assert device.cpu_has_native_bf16() is None
    assert device.precision_warning("bf16", torch.device("cpu")) is None  # unknown: no claim either way


def test_torch_probes_come_first(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    monkeypatch.setattr(device, "open", _cpuinfo("avx2"), raising=False)
    assert device.cpu_has_native_bf16() is True
