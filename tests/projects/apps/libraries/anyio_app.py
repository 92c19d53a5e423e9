import signal

import anyio


async def main() -> None:
    await anyio.run_process(["git", "status"])
    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        print(signals)
    await (await anyio.connect_unix("/run/app.sock")).aclose()
    await (await anyio.create_udp_socket(local_host="127.0.0.1")).aclose()


async def wait(sock: object) -> None:
    await anyio.wait_socket_readable(sock)
