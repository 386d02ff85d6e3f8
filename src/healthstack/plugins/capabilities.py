"""Capabilities a plugin may import, each only when an administrator granted it.

There is deliberately no WASI context: the host defines, one by one, the few WASI functions a
granted capability needs. File system, network, environment, arguments and stdio do not exist for
a plugin at all, so there is nothing to misconfigure. Any other import fails the call with
``import-denied`` before a single guest instruction runs.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from wasmtime import Caller, FuncType, Linker, Memory, Module, ValType

from healthstack.plugins.errors import PluginError

WASI = "wasi_snapshot_preview1"
ERRNO_SUCCESS, ERRNO_FAULT, ERRNO_INVAL = 0, 21, 28
MAX_RANDOM_BYTES = 64 * 1024


@dataclass(frozen=True)
class HostImport:
    capability: str
    module: str
    name: str
    ty: FuncType
    func: Callable[..., int]


def _memory(caller: Caller) -> Memory | None:
    export = caller.get("memory")
    return export if isinstance(export, Memory) else None


def _write(caller: Caller, ptr: int, data: bytes) -> int:
    memory = _memory(caller)
    if memory is None or ptr < 0 or ptr + len(data) > memory.data_len(caller):
        return ERRNO_FAULT
    memory.write(caller, data, ptr)
    return ERRNO_SUCCESS


def _clock_time_get(caller: Caller, clock_id: int, _precision: int, out_ptr: int) -> int:
    # 0 = realtime, 1 = monotonic; process/thread CPU clocks are not offered.
    if clock_id == 0:
        now = time.time_ns()
    elif clock_id == 1:
        now = time.monotonic_ns()
    else:
        return ERRNO_INVAL
    return _write(caller, out_ptr, now.to_bytes(8, "little"))


def _random_get(caller: Caller, buf_ptr: int, buf_len: int) -> int:
    if not 0 <= buf_len <= MAX_RANDOM_BYTES:
        return ERRNO_INVAL
    return _write(caller, buf_ptr, secrets.token_bytes(buf_len))


_I32, _I64 = ValType.i32(), ValType.i64()
HOST_IMPORTS: tuple[HostImport, ...] = (
    HostImport(
        "clock", WASI, "clock_time_get", FuncType([_I32, _I64, _I32], [_I32]), _clock_time_get
    ),
    HostImport("random", WASI, "random_get", FuncType([_I32, _I32], [_I32]), _random_get),
)
CAPABILITIES: frozenset[str] = frozenset(h.capability for h in HOST_IMPORTS)
_BY_NAME = {(h.module, h.name): h for h in HOST_IMPORTS}


def required_capabilities(module: Module) -> frozenset[str]:
    """Capabilities the module's imports ask for; raises ``import-denied`` for unknown imports."""
    needed = set()
    for imp in module.imports:
        host = _BY_NAME.get((imp.module, imp.name or ""))
        if host is None:
            raise PluginError(
                "import-denied",
                f"imports {imp.module}.{imp.name}, which the plugin host does not provide "
                f"(providable: {', '.join(sorted(f'{m}.{n}' for m, n in _BY_NAME))})",
            )
        needed.add(host.capability)
    return frozenset(needed)


def check_grants(module: Module, grants: frozenset[str]) -> None:
    missing = required_capabilities(module) - grants
    if missing:
        raise PluginError(
            "import-denied",
            f"needs capability {', '.join(sorted(missing))} which an administrator has not granted",
        )


def make_linker(linker: Linker, grants: frozenset[str]) -> None:
    """Define exactly the host functions of the granted capabilities, nothing else."""
    for host in HOST_IMPORTS:
        if host.capability in grants:
            linker.define_func(host.module, host.name, host.ty, host.func, access_caller=True)


def validate_grants(grants: frozenset[str]) -> None:
    unknown = grants - CAPABILITIES
    if unknown:
        raise ValueError(
            f"unknown capability {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(CAPABILITIES))}"
        )
