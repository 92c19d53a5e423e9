"""asyncpg speaks the protocol over ordinary asyncio streams: no need."""
from sqlalchemy.ext.asyncio import create_async_engine

engine = create_async_engine("postgresql+asyncpg://scott:tiger@localhost/test")
