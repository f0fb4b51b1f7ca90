"""One module per topic's agent; each is a short `async for` over its stream."""
