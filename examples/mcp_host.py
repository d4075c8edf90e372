"""What an LLM host does with the broker's MCP server, played by the MCP SDK's own client.

Run the broker and the fetcher (``examples/README.md``), then::

    .venv/bin/python examples/mcp_host.py --topic "solar sails"            # over stdio
    .venv/bin/python examples/mcp_host.py --url http://127.0.0.1:8080/mcp  # over streamable HTTP

Over stdio it launches ``a2a-broker-client mcp --address ...`` as a host launches an MCP server; with
``--url`` it talks to ``/mcp`` on the broker's HTTP listener. Either way it lists the tools, asks
which capabilities the agents offer, hands a ``fetch`` task to them, waits for it (printing the
progress notifications the broker sends from the task's own events) and prints the result, as a
model would read it. With ``--auth`` on the broker, pass an orchestrator's ``--token``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

import httpx2
import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def run(client: Client, topic: str) -> int:
    tools = (await client.list_tools()).tools
    print(f"{len(tools)} tools: {', '.join(t.name for t in tools)}")
    print("capabilities:\n" + text_of(await client.call_tool("list_capabilities", {})))

    submitted = await client.call_tool(
        "submit_task",
        {"title": f"fetch {topic}", "capability": "fetch", "payload": {"topic": topic, "source": "papers"}},
    )
    print(text_of(submitted))
    if submitted.is_error:
        return 1
    task_id = submitted.structured_content["task"]["task_id"]

    async def progress(done: float, total: float | None, message: str | None) -> None:
        print(f"  progress {done:g}: {message}")

    waited = await client.call_tool(
        "wait_for_task", {"task_id": task_id, "timeout_s": 60}, progress_callback=progress
    )
    print(text_of(waited))
    if waited.is_error or not waited.structured_content["finished"]:
        return 1
    for note in waited.structured_content["task"]["result"]["notes"]:
        print(f"  - {note}")
    resource = json.loads((await client.read_resource(f"task://{task_id}")).contents[0].text)
    print(f"task://{task_id}: {resource['status']}, {len(resource['history'])} state changes")
    return 0


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--address", help="broker host:port for stdio (default $A2A_BROKER_ADDRESS or 127.0.0.1:50051)"
    )
    p.add_argument("--url", help="the broker's /mcp URL: streamable HTTP instead of stdio")
    p.add_argument("--token", help="a bearer token (an orchestrator's) when the broker has --auth")
    p.add_argument("--topic", default="solar sails", help="what to fetch")
    args = p.parse_args()
    me = types.Implementation(name="mcp-host-example", version="1.0")
    if args.url:
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
        # streamed answers (progress while waiting) may stay open: a long read timeout
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http:
            async with Client(streamable_http_client(args.url, http_client=http), client_info=me) as client:
                return await run(client, args.topic)
    command: list[str] = ["-m", "a2a_broker_client", "mcp"]
    command += [
        *(["--address", args.address] if args.address else []),
        *(["--token", args.token] if args.token else []),
    ]
    # A host starts an MCP server with a small environment: pass on the broker's settings, if any.
    env = {k: v for k, v in os.environ.items() if k.startswith("A2A_BROKER_")}
    server = StdioServerParameters(command=sys.executable, args=command, env=env)
    async with Client(server, client_info=me) as client:
        return await run(client, args.topic)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
