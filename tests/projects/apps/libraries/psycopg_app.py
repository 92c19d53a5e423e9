import psycopg


async def fetch() -> None:
    async with await psycopg.AsyncConnection.connect("dbname=test") as conn:
        await conn.execute("select 1")
