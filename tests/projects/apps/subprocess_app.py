import asyncio
from asyncio import create_subprocess_shell as shell


async def main() -> None:
    proc = await asyncio.create_subprocess_exec("git", "status", stdout=asyncio.subprocess.PIPE)
    await proc.communicate()
    await (await shell("echo hi")).wait()
    loop = asyncio.get_running_loop()
    await loop.subprocess_exec(asyncio.SubprocessProtocol, "true")
