import asyncio
import socket


def watch(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    loop.add_reader(sock.fileno(), print, "readable")
    loop.add_writer(sock, print, "writable")
