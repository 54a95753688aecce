"""The float-kernel configurations a portable claim must survive (`book variants`, `make test-portable`)."""

from __future__ import annotations


def kernel_variants() -> dict[str, dict[str, str]]:
    """Float-kernel configurations other than this machine's native one: name -> environment variables.

    Each makes PyTorch (ATen's vectorised CPU kernels) or MKL (matrix products) take another code path, the
    way another CPU would: `default` is ATen's scalar path (no SIMD), `avx2` the path of an AVX2-only x86 CPU
    (offered where the native one is AVX-512), `mkl-compatible` MKL's conservative, CPU-independent path.
    The variables are read when torch loads, so each must be set before the process starts.
    """
    import torch

    native = torch.backends.cpu.get_cpu_capability().lower()  # honours ATEN_CPU_CAPABILITY if it is already set
    variants = {"default": {"ATEN_CPU_CAPABILITY": "default"}}
    if native.startswith("avx512"):
        variants["avx2"] = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
    if torch.backends.mkl.is_available():
        variants["mkl-compatible"] = {"MKL_CBWR": "COMPATIBLE"}
    if native == "default":  # already scalar (or ATEN_CPU_CAPABILITY set): nothing of ATen's left to vary
        variants.pop("default")
    return variants
