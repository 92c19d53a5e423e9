import asyncio
import signal

import zmq.asyncio


async def main() -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    await asyncio.create_subprocess_exec("git", "fetch")
    zmq.asyncio.Context().socket(0)
