import aiodns


async def lookup(name: str) -> object:
    return await aiodns.DNSResolver().query(name, "A")
