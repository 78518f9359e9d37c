"""A TCP proxy in front of a plaintext gRPC server that flips one byte of a large message.

It reads the server → client direction as HTTP/2 frames (a server's side of an h2c connection
is nothing but frames) and, once a stream's DATA has passed ``offset`` bytes, flips the byte
at that offset. gRPC has no checksum of its own, so the client receives a well-formed message
whose payload differs in one bit: exactly what a reader that verifies digests must refuse.
``offset`` defaults to a point inside the first 1 MiB chunk of a ``ReadBlob`` stream (past its
5-byte gRPC prefix and protobuf field header), so the flip never lands on framing.
The proxy runs its own event loop in a thread, so synchronous (end-to-end) tests can use it.
"""

from __future__ import annotations

import asyncio
import struct
import threading

DATA = 0x0
PADDED = 0x8


class FlipProxy:
    """``127.0.0.1:<port>`` → ``target``; flips ``flips`` bytes in all (one per stream)."""

    def __init__(self, target_host: str, target_port: int, *, flips: int = 1,
                 offset: int = 500_000) -> None:
        self.target = (target_host, target_port)
        self.remaining = flips
        self.offset = offset
        self.flipped = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FlipProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # each closes its writers
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        upstream = asyncio.ensure_future(_pipe(client_r, server_w))
        downstream = asyncio.ensure_future(self._frames(server_r, client_w))
        try:
            await asyncio.wait([upstream, downstream], return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when stop() cancels us: an unclosed StreamWriter warns when collected
            for task in (upstream, downstream):
                task.cancel()
            for writer in (client_w, server_w):
                writer.close()

    async def _frames(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen: dict[int, int] = {}  # DATA bytes per stream so far
        while True:
            header = await reader.readexactly(9)
            length = int.from_bytes(header[:3], "big")
            kind, flags = header[3], header[4]
            (stream,) = struct.unpack(">I", header[5:9])
            payload = bytearray(await reader.readexactly(length))
            if kind == DATA and not flags & PADDED:
                before = seen.get(stream, 0)
                seen[stream] = before + length
                if self.remaining > 0 and before <= self.offset < before + length:
                    payload[self.offset - before] ^= 0x01
                    self.remaining -= 1
                    self.flipped += 1
            writer.write(header + payload)
            await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
