import asyncio
import pty
import sys


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    master, slave = pty.openpty()
    loop.add_reader(master, print, "terminal output")
