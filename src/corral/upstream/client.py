"""The one pooled HTTP client shared by every upstream call."""

import aiohttp


def new_http_session(
    *, connect_s: float = 10.0, read_s: float | None = 300.0, total_s: float | None = None
) -> aiohttp.ClientSession:
    """`read_s` bounds the wait for the first byte and every gap between chunks of a stream."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=total_s, sock_connect=connect_s, sock_read=read_s)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=True, skip_auto_headers=("User-Agent",)
    )
