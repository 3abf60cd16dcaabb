"""Front doors ask clients to reconnect after --max-connection-age-s, so that a Kubernetes Service (which
balances connections, and gRPC keeps one per client) spreads clients over front-door pods added since."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import grpc
import pytest

from service.config import Settings, parse_settings
from service.server import server_options


async def _calls(settings: Settings, seconds: float) -> tuple[set[str], int]:
    """(the client addresses that a server built with the front door's options sees from one channel calling it
    back to back for `seconds`, the messages of one stream of that length read meanwhile on the same channel)."""
    peers: set[str] = set()

    async def peer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        peers.add(context.peer())
        return b""

    async def ticks(request: bytes, context: grpc.aio.ServicerContext) -> Any:  # as a long WatchJob stream
        for _ in range(round(seconds / 0.1)):
            await asyncio.sleep(0.1)
            yield b"tick"

    server = grpc.aio.server(options=server_options(settings))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Calls", {
        "Peer": grpc.unary_unary_rpc_method_handler(peer),
        "Ticks": grpc.unary_stream_rpc_method_handler(ticks)})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stream = channel.unary_stream("/test.Calls/Ticks")(b"", timeout=30)
            call = channel.unary_unary("/test.Calls/Peer")
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                await call(b"", timeout=10)
                await asyncio.sleep(0.05)
            received = [message async for message in stream]
    finally:
        await server.stop(None)
    return peers, len(received)


def test_connections_are_recycled_after_the_age_and_streams_run_to_their_end() -> None:
    peers, ticks = asyncio.run(_calls(dataclasses.replace(Settings(), max_connection_age_s=1.0), 2.5))
    assert len(peers) >= 2  # the channel reconnected at least once; every call was answered
    assert ticks == 25  # the stream open across the age limit was not cut off
    peers, ticks = asyncio.run(_calls(dataclasses.replace(Settings(), max_connection_age_s=0), 2.5))
    assert len(peers) == 1 and ticks == 25


def test_the_age_is_a_setting_with_a_floor() -> None:
    assert parse_settings([]).max_connection_age_s == 300
    assert parse_settings(["--max-connection-age-s", "0"]).max_connection_age_s == 0
    for bad in ("0.5", "-1", "nan"):
        with pytest.raises(SystemExit):
            parse_settings(["--max-connection-age-s", bad])
