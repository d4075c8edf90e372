"""Pure rules of the broker: no I/O, no asyncio, no SQL execution; each module owns one concern."""
