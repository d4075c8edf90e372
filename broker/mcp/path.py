"""Where the HTTP listener serves MCP (a module of its own: the package and its endpoint both need it)."""

PATH = "/mcp"
