from curl_cffi.requests import AsyncSession


async def fetch() -> None:
    async with AsyncSession() as session:
        await session.get("https://example.org")
