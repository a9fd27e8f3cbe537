"""Junction: one MCP endpoint for everything an assistant needs.

The public surface for provider authors is re-exported here; everything else in
`hub` is the hub's own machinery and may change between releases.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers see; at run time `__getattr__` below imports them when first used
    from hub.provider import (
        CallContext,
        InputUnavailable,
        InvalidArguments,
        Provider,
        ProviderHost,
        ProviderState,
        ToolError,
        UnknownTool,
    )

_PROVIDER_API = ("CallContext", "InputUnavailable", "InvalidArguments", "Provider", "ProviderHost", "ProviderState",
                 "ToolError", "UnknownTool")


def __getattr__(name: str) -> object:
    """The provider API, imported when first asked for: `import hub.cli` (every `junction` command) then does not
    load the MCP SDK unless the command needs it."""
    if name in _PROVIDER_API:
        import hub.provider

        return getattr(hub.provider, name)
    raise AttributeError(f"module 'hub' has no attribute {name!r}")


__all__ = ["CallContext", "InputUnavailable", "InvalidArguments", "Provider", "ProviderHost", "ProviderState", "ToolError",
           "UnknownTool", "__version__"]
