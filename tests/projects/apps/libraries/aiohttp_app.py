from aiohttp import ClientSession, TCPConnector, UnixConnector, web
from aiohttp.resolver import AsyncResolver


async def fetch() -> None:
    async with ClientSession(connector=UnixConnector(path="/run/app.sock")) as session:
        await session.get("http://localhost/")


def serve() -> None:
    connector = TCPConnector(resolver=AsyncResolver())
    web.run_app(web.Application(), print=connector)
