"""Sandboxed WebAssembly plugins: site-specific clinical rules run in-process on wasmtime.

The public surface is :class:`PluginRuntime` (one call, fully isolated), :class:`PluginHost`
(hooks: validate, derive, operation) and :class:`PluginError`. See ``docs/plugins.md``.
"""

from healthstack.plugins.errors import PluginError
from healthstack.plugins.host import HookResult, PluginHost
from healthstack.plugins.model import Limits, Plugin, Trigger
from healthstack.plugins.runtime import PluginRuntime

__all__ = [
    "HookResult",
    "Limits",
    "Plugin",
    "PluginError",
    "PluginHost",
    "PluginRuntime",
    "Trigger",
]
