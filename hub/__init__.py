"""Junction: one MCP endpoint for everything an assistant needs.

The public surface for provider authors is re-exported here; everything else in
`hub` is the hub's own machinery and may change between releases.
"""

__version__ = "0.1.0"

from hub.provider import (  # noqa: E402
    CallContext,
    InputUnavailable,
    InvalidArguments,
    Provider,
    ProviderHost,
    ProviderState,
    ToolError,
    UnknownTool,
)

__all__ = ["CallContext", "InputUnavailable", "InvalidArguments", "Provider", "ProviderHost", "ProviderState", "ToolError",
           "UnknownTool", "__version__"]
