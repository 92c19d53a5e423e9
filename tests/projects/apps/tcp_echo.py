"""A plain asyncio TCP echo server and client: it needs nothing beyond what every loop does.

It calls things that look like features but are not (subprocess.run, signal.signal, os.pipe,
sys.stdin.read, a TCP socket), and names add_reader only in this text: scan finds no need here.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.read(100))
    await writer.drain()
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=100)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    print(await reader.read(100))
    loop = asyncio.get_running_loop()
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setblocking(False)
    await loop.sock_connect(raw, ("127.0.0.1", port))
    raw.close()
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    transport.close()
    await loop.run_in_executor(None, subprocess.run, [sys.executable, "-c", "pass"])
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
    if not sys.stdin.isatty():
        sys.stdin.read()
