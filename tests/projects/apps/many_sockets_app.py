import asyncio
import resource

import aiohttp

resource.setrlimit(resource.RLIMIT_NOFILE, (10000, 10000))


async def main() -> None:
    server = await asyncio.start_server(lambda r, w: None, "0.0.0.0", 8080, backlog=2048)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000)) as session:
        await session.get("http://localhost:8080/")
    server.close()
