import asyncio
from socket import AF_UNIX, SOCK_STREAM, socket


async def main(path: str) -> None:
    server = await asyncio.start_unix_server(lambda r, w: None, path)
    reader, writer = await asyncio.open_unix_connection(path)
    socket(AF_UNIX, SOCK_STREAM).close()
    loop = asyncio.get_running_loop()
    await loop.create_unix_connection(asyncio.Protocol, path)
    server.close()
