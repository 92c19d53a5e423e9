"""Starts a child process and installs a signal handler: `run --record` reports exactly those needs."""
import asyncio
import signal
import sys


async def main() -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, print, "interrupted")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "print(6 * 7)", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    loop.remove_signal_handler(signal.SIGINT)
    print(out.decode().strip())


asyncio.run(main())
