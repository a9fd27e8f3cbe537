"""Files under named roots as MCP tools and resources (the path gate is tools/files/paths.py)."""
