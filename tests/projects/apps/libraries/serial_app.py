import serial_asyncio


async def open_port() -> None:
    reader, writer = await serial_asyncio.open_serial_connection(url="/dev/ttyUSB0", baudrate=115200)
