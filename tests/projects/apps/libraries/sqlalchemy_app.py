from sqlalchemy.ext.asyncio import create_async_engine

engine = create_async_engine("postgresql+psycopg://scott:tiger@localhost/test")
