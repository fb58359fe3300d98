"""The HTTP edge: routes, error mapping, SSE framing. Nothing below this package imports it."""
