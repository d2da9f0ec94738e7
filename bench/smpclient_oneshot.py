"""One smpclient transfer as a process, for the benchmark's whole-command timing:
``python bench/smpclient_oneshot.py upload|download PORT LOCAL REMOTE``.

It is what a bench engineer would write with smpclient 7.3 (smp-notes §4): connect (which reads
the MCUmgr parameters), transfer, disconnect. hilprov's counterpart is ``hilprov fs``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


async def main(action: str, port: str, local: str, remote: str) -> None:
    from smpclient import SMPClient
    from smpclient.transport.serial import SMPSerialTransport

    client = SMPClient(SMPSerialTransport(), port, timeout_s=5.0)
    await client.connect(connect_timeout_s=5.0)
    try:
        if action == "upload":
            async for _ in client.upload_file(Path(local).read_bytes(), remote):
                pass
        else:
            Path(local).write_bytes(await client.download_file(remote))
    finally:
        await client.disconnect()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
