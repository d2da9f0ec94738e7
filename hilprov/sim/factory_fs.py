"""The virtual board's file systems: the fake ``/factory`` of the initial image and a RAM scratch.

``/factory`` follows spec §5.3. ``provision.cbor`` is write-only and feeds a 512-byte ring buffer
that the device's Anjay thread consumes: one write larger than 512 bytes fails with ENOSPC,
smaller ones block while the ring is full. ``result.txt``'s stat marks the end of the upload and
blocks until provisioning has finished; so do 15 s without new data once a byte has arrived (the
attempt then runs on what arrived). There is one attempt per boot; afterwards provision.cbor no
longer opens (ENOENT). ``endpoint.txt`` holds the default endpoint name.

Everything that blocks wakes up when the board reboots (:meth:`FactoryFs.cancel`) and then fails
with EIO, so a reboot never leaves a device thread hanging.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from hilprov.sim.smp_server import FileSystem, FsError, OpenFile

RING_SIZE = 512
PROVISION = "provision.cbor"
RESULT = "result.txt"
ENDPOINT = "endpoint.txt"


@dataclass
class Attempt:
    """One provisioning attempt: what the device received and what it answered."""

    blob: bytes
    result_text: str
    ok: bool


class FactoryFs:
    """The initial image's ``/factory`` (paths relative to the mount point).

    `provision` is called on the Anjay thread with the complete blob and returns
    ``(ok, result_text)``. `on_bytes(total)` is told how many bytes provision.cbor has
    received (fault injection uses it).
    """

    def __init__(self, endpoint_name: str, provision: Callable[[bytes], tuple[bool, str]],
                 *, eof_idle: float = 15.0,
                 on_bytes: Callable[[int], None] | None = None) -> None:
        self.endpoint_name = endpoint_name
        self.eof_idle = eof_idle
        self._provision = provision
        self._on_bytes = on_bytes
        self._cond = threading.Condition()
        self._ring = bytearray()
        self._received = bytearray()  # what the Anjay thread has read so far
        self._bytes_in = 0
        self._last_data = 0.0
        self._eof = False
        self._cancelled = False
        self.attempt: Attempt | None = None

    # --- device side ----------------------------------------------------------------------

    def cancel(self) -> None:
        """The board reboots: wake every blocked caller (they fail with EIO)."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def run_provisioning(self) -> Attempt | None:
        """The Anjay thread: read the stream until EOF, then provision once. None if cancelled."""
        with self._cond:
            while True:
                if self._cancelled:
                    return None
                if self._ring:
                    self._received += self._ring
                    self._ring.clear()
                    self._cond.notify_all()  # space for blocked writers
                    continue
                if self._eof:
                    break
                if self._received:
                    idle = time.monotonic() - self._last_data
                    if idle >= self.eof_idle:
                        break
                    self._cond.wait(self.eof_idle - idle)
                else:
                    self._cond.wait()  # Anjay waits forever for the first byte
            blob = bytes(self._received)
        ok, text = self._provision(blob)
        with self._cond:
            if self._cancelled:
                return None
            self.attempt = Attempt(blob, text, ok)
            self._cond.notify_all()
            return self.attempt

    # --- VFS side -------------------------------------------------------------------------

    def stat(self, name: str) -> tuple[bool, int]:
        if name in (ENDPOINT, RESULT):
            return True, len(self._text(name))
        raise FsError(errno.ENOENT, f"/factory/{name}")  # provision.cbor included (spec)

    def open(self, name: str, write: bool) -> OpenFile:
        if name == PROVISION and write:
            with self._cond:
                if self.attempt is not None or self._eof:
                    raise FsError(errno.ENOENT, "the provisioning attempt of this boot is over")
            return _ProvisionFile(self)
        if name == PROVISION:
            raise FsError(errno.EACCES, "provision.cbor is write-only")
        if name in (ENDPOINT, RESULT):
            if write:
                raise FsError(errno.EROFS, f"/factory/{name} is read-only")
            return _TextFile(self, name)
        raise FsError(errno.ENOENT, f"/factory/{name}")

    def _text(self, name: str) -> bytes:
        """Content of endpoint.txt or result.txt (the latter waits for the attempt)."""
        return (self.endpoint_name if name == ENDPOINT else self._wait_result()).encode()

    def _wait_result(self) -> str:
        with self._cond:
            self._eof = True  # stat of result.txt marks the end of the upload
            self._cond.notify_all()
            while self.attempt is None:
                if self._cancelled:
                    raise FsError(errno.EIO, "device rebooted")
                self._cond.wait()
            return self.attempt.result_text

    def _append(self, data: bytes) -> None:
        if len(data) > RING_SIZE:
            raise FsError(errno.ENOSPC, f"{len(data)}-byte write to a {RING_SIZE}-byte ring")
        with self._cond:
            while True:
                if self._cancelled:
                    raise FsError(errno.EIO, "device rebooted")
                if self.attempt is not None or self._eof:
                    raise FsError(errno.EBADF, "the provisioning attempt of this boot is over")
                if RING_SIZE - len(self._ring) >= len(data):
                    break
                self._cond.wait()  # back-pressure until the Anjay thread reads
            self._ring += data
            self._bytes_in += len(data)
            self._last_data = time.monotonic()
            total = self._bytes_in
            self._cond.notify_all()
        if self._on_bytes is not None:
            self._on_bytes(total)


class _ProvisionFile:
    def __init__(self, fs: FactoryFs) -> None:
        self._fs = fs

    def read(self, off: int, size: int) -> bytes:
        raise FsError(errno.EBADF, "provision.cbor is write-only")

    def write(self, off: int, data: bytes) -> None:
        self._fs._append(data)  # offsets are sequential by construction (fs_mgmt checks them)

    def truncate(self) -> None:
        pass  # a stream: nothing to truncate

    def close(self) -> None:
        pass


class _TextFile:
    def __init__(self, fs: FactoryFs, name: str) -> None:
        self._fs = fs
        self._name = name

    def read(self, off: int, size: int) -> bytes:
        return self._fs._text(self._name)[off:off + size]

    def write(self, off: int, data: bytes) -> None:
        raise FsError(errno.EBADF, f"/factory/{self._name} is read-only")

    def truncate(self) -> None:
        raise FsError(errno.EBADF, f"/factory/{self._name} is read-only")

    def close(self) -> None:
        pass


class RamFs:
    """A flat in-RAM file system (like the LittleFS at ``/lfs1``) with a capacity in bytes."""

    def __init__(self, capacity: int = 256 * 1024) -> None:
        self.capacity = capacity
        self.files: dict[str, bytearray] = {}
        self._lock = threading.Lock()

    def used(self) -> int:
        """Bytes stored (the caller holds the lock)."""
        return sum(len(data) for data in self.files.values())

    def stat(self, name: str) -> tuple[bool, int]:
        with self._lock:
            if name in self.files:
                return True, len(self.files[name])
            if not name or any(other.startswith(name.rstrip("/") + "/") for other in self.files):
                return False, 0  # the root or a directory
        raise FsError(errno.ENOENT, name)

    def open(self, name: str, write: bool) -> OpenFile:
        if not name or name.endswith("/"):
            raise FsError(errno.EINVAL, name)
        with self._lock:
            if name not in self.files:
                if not write:
                    raise FsError(errno.ENOENT, name)
                self.files[name] = bytearray()
        return _RamFile(self, name)


class _RamFile:
    def __init__(self, fs: RamFs, name: str) -> None:
        self._fs = fs
        self._name = name

    def read(self, off: int, size: int) -> bytes:
        with self._fs._lock:
            return bytes(self._fs.files.get(self._name, b"")[off:off + size])

    def write(self, off: int, data: bytes) -> None:
        with self._fs._lock:
            content = self._fs.files.setdefault(self._name, bytearray())
            grow = max(0, off + len(data) - len(content))
            if self._fs.used() + grow > self._fs.capacity:
                raise FsError(errno.ENOSPC, f"{self._fs.capacity}-byte file system is full")
            if off > len(content):
                content += bytes(off - len(content))
            content[off:off + len(data)] = data

    def truncate(self) -> None:
        with self._fs._lock:
            self._fs.files[self._name] = bytearray()

    def close(self) -> None:
        pass


class MountTable:
    """Routes absolute paths to mounted file systems, like Zephyr's VFS (no mount: ENOENT)."""

    def __init__(self) -> None:
        self._mounts: dict[str, FileSystem] = {}
        self._lock = threading.Lock()

    def mount(self, point: str, fs: FileSystem) -> None:
        with self._lock:
            self._mounts[point.rstrip("/")] = fs

    def unmount(self, point: str) -> None:
        with self._lock:
            self._mounts.pop(point.rstrip("/"), None)

    def _route(self, path: str) -> tuple[FileSystem, str]:
        if not path.startswith("/"):
            raise FsError(errno.EINVAL, f"{path!r} is not an absolute path")
        with self._lock:
            for point, fs in self._mounts.items():
                if path == point or path.startswith(point + "/"):
                    return fs, path[len(point) + 1:]
        raise FsError(errno.ENOENT, f"no file system mounted for {path}")

    def stat(self, path: str) -> tuple[bool, int]:
        fs, rel = self._route(path)
        return fs.stat(rel)

    def open(self, path: str, write: bool) -> OpenFile:
        fs, rel = self._route(path)
        return fs.open(rel, write)
