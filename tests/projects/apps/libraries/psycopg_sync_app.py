"""psycopg used synchronously: no event loop is involved."""
import psycopg

with psycopg.connect("dbname=test") as conn:
    conn.execute("select 1")
