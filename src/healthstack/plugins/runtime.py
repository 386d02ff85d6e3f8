"""The sandbox: one fresh wasmtime Store per call, with fuel, memory and wall-clock limits.

Compiled modules are cached by the SHA-256 of their bytes (compilation costs milliseconds, a call
microseconds). Calls run on a small thread pool: wasmtime releases the GIL while guest code runs,
so a runaway plugin occupies one worker until its deadline and nothing else.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from wasmtime import (
    Config,
    Engine,
    Func,
    FuncType,
    Linker,
    Memory,
    MemoryType,
    Module,
    Store,
    Trap,
    TrapCode,
    WasmtimeError,
)

from healthstack.plugins import abi
from healthstack.plugins.capabilities import check_grants, make_linker
from healthstack.plugins.errors import PluginError
from healthstack.plugins.model import Limits, Plugin, sha256_hex

WASM_MAGIC = b"\0asm"
PAGE = 65536
# Export name -> (param count, result count); every ABI value is i32 except hs_invoke's i64 result.
FUNC_ARITY = {"hs_abi_version": (0, 1), "hs_alloc": (1, 1), "hs_invoke": (2, 1)}


@dataclass(frozen=True)
class Invocation:
    """A successful call: the validated issues or resources, and what it cost."""

    items: list[dict[str, Any]]
    duration_ms: float
    fuel_used: int


class EpochTicker:
    """Advances the engine epoch every ``tick_ms``; stores trap once past their deadline."""

    def __init__(self, engine: Engine, tick_ms: int) -> None:
        self.tick_ms = tick_ms
        self._engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wasm-epoch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.tick_ms / 1000):
            self._engine.increment_epoch()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class ModuleCache:
    """Compiled modules by SHA-256, least recently used evicted first."""

    def __init__(self, engine: Engine, size: int) -> None:
        self._engine, self._size = engine, size
        self._modules: OrderedDict[str, Module] = OrderedDict()
        self._lock = threading.Lock()
        self.compiles = 0

    def get(self, wasm: bytes, sha256: str | None = None) -> Module:
        key = sha256 or sha256_hex(wasm)
        with self._lock:
            if key in self._modules:
                self._modules.move_to_end(key)
                return self._modules[key]
        module = self._compile(wasm)
        with self._lock:
            self._modules[key] = module
            self.compiles += 1
            while len(self._modules) > self._size:
                self._modules.popitem(last=False)
        return module

    def _compile(self, wasm: bytes) -> Module:
        # Module() would also accept WAT text; plugins are binaries only, so one format is audited.
        if not wasm.startswith(WASM_MAGIC):
            raise PluginError("compile-error", "not a WebAssembly binary (missing \\0asm header)")
        try:
            return Module(self._engine, wasm)
        except WasmtimeError as exc:
            raise PluginError("compile-error", f"module does not compile: {_cause(exc)}") from None


def new_engine() -> Engine:
    config = Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    config.cranelift_opt_level = "speed"
    return Engine(config)


class PluginRuntime:
    """Runs plugin calls in isolation. Thread-safe; use one per process and ``close()`` it."""

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        workers: int = 4,
        tick_ms: int = 5,
        cache_size: int = 64,
    ) -> None:
        self.limits = limits or Limits()
        self.engine = new_engine()
        self.modules = ModuleCache(self.engine, cache_size)
        self._ticker = EpochTicker(self.engine, tick_ms)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wasm-call")
        self._checked: set[tuple[str, frozenset[str]]] = set()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._ticker.stop()

    def __enter__(self) -> PluginRuntime:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def inspect(self, plugin: Plugin) -> Module:
        """Compile and check imports and exports without running anything (used at registration)."""
        module = self.modules.get(plugin.wasm, plugin.sha256)
        key = (plugin.sha256, plugin.grants)
        if key not in self._checked:  # the checks walk every import/export: once per module+grants
            check_grants(module, plugin.grants)
            check_exports(module)
            self._checked.add(key)
        return module

    async def invoke(
        self,
        plugin: Plugin,
        trigger: str,
        resources: list[dict[str, Any]],
        params: dict[str, Any] | None = None,
        limits: Limits | None = None,
    ) -> Invocation:
        """Run one call on the worker pool, so the event loop never waits on guest code."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, self.call, plugin, trigger, resources, params, limits
        )

    def call(
        self,
        plugin: Plugin,
        trigger: str,
        resources: list[dict[str, Any]],
        params: dict[str, Any] | None = None,
        limits: Limits | None = None,
    ) -> Invocation:
        """Run one call on this thread; raises :class:`PluginError` labelled with the plugin."""
        limits = limits or self.limits
        try:
            payload = abi.encode_input(trigger, resources, params or {})
            if len(payload) > limits.max_input_bytes:
                raise PluginError(
                    "input-too-large",
                    f"input is {len(payload)} bytes, limit {limits.max_input_bytes}",
                )
            module = self.inspect(plugin)
            return _Call(self.engine, module, plugin, limits, self._ticker.tick_ms).run(
                trigger, payload
            )
        except PluginError as exc:
            raise exc.with_plugin(plugin.label) from None


def check_plugin(plugin: Plugin) -> None:
    """Registration-time check without a runtime: compiles, imports are granted, exports present."""
    module = ModuleCache(new_engine(), 1).get(plugin.wasm, plugin.sha256)
    check_grants(module, plugin.grants)
    check_exports(module)


def check_exports(module: Module) -> None:
    exports = {e.name: e.type for e in module.exports}
    if not isinstance(exports.get("memory"), MemoryType):
        raise PluginError("missing-export", "module must export its linear memory as 'memory'")
    for name, (n_params, n_results) in FUNC_ARITY.items():
        ty = exports.get(name)
        if not isinstance(ty, FuncType):
            raise PluginError(
                "missing-export", f"module must export function {name!r} (ABI v{abi.ABI_VERSION})"
            )
        if (len(ty.params), len(ty.results)) != (n_params, n_results):
            raise PluginError(
                "missing-export",
                f"export {name!r} has the wrong signature for ABI v{abi.ABI_VERSION}",
            )


class _Call:
    """One invocation: a fresh store and instance, used once and dropped."""

    def __init__(
        self, engine: Engine, module: Module, plugin: Plugin, limits: Limits, tick_ms: int
    ) -> None:
        self.limits = limits
        self.store = Store(engine)
        self.store.set_limits(
            memory_size=limits.memory_bytes,
            table_elements=10_000,
            instances=1,
            memories=1,
            tables=4,
        )
        self.store.set_fuel(limits.fuel)
        # Epoch ticks are coarse: the deadline is honoured to within one tick.
        self.store.set_epoch_deadline(max(1, -(-limits.timeout_ms // tick_ms)))
        linker = Linker(engine)
        make_linker(linker, plugin.grants)
        self.linker, self.module = linker, module
        self.memory: Memory | None = None

    def run(self, trigger: str, payload: bytes) -> Invocation:
        started = time.perf_counter()
        try:
            raw = self._exchange(payload)
        except Trap as exc:
            raise self._classify(exc) from None
        except WasmtimeError as exc:
            raise self._classify_error(exc) from None
        finally:
            fuel_used = self.limits.fuel - self.store.get_fuel()
        items = abi.decode_output(trigger, raw)
        return Invocation(items, (time.perf_counter() - started) * 1000, fuel_used)

    def _exchange(self, payload: bytes) -> bytes:
        instance = self.linker.instantiate(self.store, self.module)
        exports = instance.exports(self.store)
        self.memory = _export(exports, "memory", Memory)
        version = _export(exports, "hs_abi_version", Func)(self.store)
        if version != abi.ABI_VERSION:
            raise PluginError(
                "abi-version",
                f"hs_abi_version() returned {version}, host supports {abi.ABI_VERSION}",
            )
        in_ptr = _export(exports, "hs_alloc", Func)(self.store, len(payload))
        self._check_span("hs_alloc", in_ptr, len(payload))
        self.memory.write(self.store, payload, in_ptr)
        packed = _export(exports, "hs_invoke", Func)(self.store, in_ptr, len(payload))
        out_ptr, out_len = abi.split_result(packed)
        if out_len > self.limits.max_output_bytes:
            raise PluginError(
                "output-too-large",
                f"output is {out_len} bytes, limit {self.limits.max_output_bytes}",
            )
        self._check_span("hs_invoke", out_ptr, out_len)
        return bytes(self.memory.read(self.store, out_ptr, out_ptr + out_len))

    def _check_span(self, what: str, ptr: int, length: int) -> None:
        assert self.memory is not None
        size = self.memory.data_len(self.store)
        if not (isinstance(ptr, int) and ptr > 0 and ptr + length <= size):
            raise PluginError(
                "invalid-output", f"{what} returned a buffer outside linear memory ({size} bytes)"
            )

    def _classify(self, trap: Trap) -> PluginError:
        code = trap.trap_code
        if code == TrapCode.INTERRUPT:
            return PluginError("timeout", f"stopped after its {self.limits.timeout_ms} ms deadline")
        if code == TrapCode.OUT_OF_FUEL:
            return PluginError(
                "out-of-fuel", f"used its whole fuel budget of {self.limits.fuel} units"
            )
        if self._memory_exhausted():
            # memory.grow beyond the cap returns -1; guests then trap (abort, unreachable).
            used = self.memory.data_len(self.store) if self.memory else 0
            return PluginError(
                "memory-limit",
                f"trapped with {used} bytes of memory, "
                f"near its {self.limits.memory_bytes}-byte limit",
            )
        return PluginError("trap", f"trapped: {_cause(trap)}")

    def _classify_error(self, exc: WasmtimeError) -> PluginError:
        text = _cause(exc)
        if "exceeds" in text and "limits" in text:  # memory or table minimum above the caps
            return PluginError(
                "memory-limit", f"cannot instantiate within the store limits: {text}"
            )
        if "import" in text:
            return PluginError("import-denied", f"cannot link imports: {text}")
        return PluginError("trap", f"failed: {text}")

    def _memory_exhausted(self) -> bool:
        # The C API cannot make a refused memory.grow trap, so infer it: a guest that traps with
        # its memory within one eighth of the cap most likely died of a refused grow.
        if self.memory is None:
            return False
        headroom = max(PAGE, self.limits.memory_bytes // 8)
        return self.memory.data_len(self.store) + headroom > self.limits.memory_bytes


def _export(exports: Any, name: str, kind: type[Any]) -> Any:
    value = exports.get(name)
    if not isinstance(value, kind):
        raise PluginError("missing-export", f"export {name!r} missing after instantiation")
    return value


def _cause(exc: BaseException) -> str:
    """wasmtime puts the backtrace first and the cause ("wasm trap: ...") on the last line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
