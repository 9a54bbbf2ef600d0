"""Independent blocks of CPU work on two cores: the later half in one forked child.

A plain ``os.fork`` and a pipe, not multiprocessing: AWS Lambda has no /dev/shm, which
multiprocessing's queues and locks need. The child only computes its blocks and writes each
result to the pipe as a length-prefixed pickle, then leaves with ``os._exit`` (no atexit
handlers, no flush of buffers it inherited, no database). The parent computes the first half
meanwhile, a thread of its drains the pipe so the child never waits on it, and the results come
out in block order, so a caller sees what the one-process loop yields. Whatever the child
leaves undone (it died, or sent what does not unpack) the parent computes itself.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import queue
import signal
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn, TypeVar

from chalicelib.logs import log_event

B = TypeVar("B")
R = TypeVar("R")

MIN_BLOCKS = 4  # fewer blocks are not worth a fork
_HEADER = struct.Struct("<Q")
_MAX_FRAME = 1 << 32  # bytes; a longer length prefix is garbage, not a block


def can_fork() -> bool:
    """Whether ``os.fork`` and a second CPU this process may run on are there to use."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return hasattr(os, "fork") and (usable or 1) >= 2


def in_two(
    blocks: Sequence[B],
    compute: Callable[[B], R],
    pack: Callable[[B, R], object],
    unpack: Callable[[B, object], R],
) -> Iterator[R]:
    """``compute(block)`` for every block, in order, the later half computed in a child.

    The child sends ``pack(block, result)``; the parent turns it back with
    ``unpack(block, payload)``, which raises on anything that is not a block's result.
    """
    half = (len(blocks) + 1) // 2
    mine, theirs = blocks[:half], blocks[half:]
    read_fd, write_fd = os.pipe()
    _widen(write_fd)
    gc.freeze()  # collections in either process must not dirty the pages both share
    try:
        pid = os.fork()
    except OSError as exc:
        gc.unfreeze()
        os.close(read_fd)
        os.close(write_fd)
        log_event("fork_unavailable", error=str(exc), blocks=len(blocks))
        yield from map(compute, blocks)
        return
    if pid == 0:
        _child(read_fd, write_fd, theirs, compute, pack)
    gc.unfreeze()
    os.close(write_fd)
    inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    reader = threading.Thread(target=_drain, args=(read_fd, inbox), daemon=True)
    reader.start()
    reaped = False
    try:
        for block in mine:
            yield compute(block)
        received, garbage = 0, None
        while received < len(theirs):
            frame = inbox.get()
            if frame is None:
                break
            try:
                result = unpack(theirs[received], pickle.loads(frame))
            except Exception as exc:  # what the child sent is not its block's result
                garbage = f"{type(exc).__name__}: {exc}"
                break
            received += 1
            yield result
        if received < len(theirs):
            _kill(pid)  # it may still be computing blocks that would not be used
        reader.join()
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        reaped = True
        missing = theirs[received:]
        if missing or code != 0:
            log_event(
                "fork_child_failed",
                exit_code=code,
                blocks=len(theirs),
                received=received,
                recomputed=len(missing),
                garbage=garbage,
            )
        for block in missing:
            yield compute(block)
    finally:
        if not reaped:  # the consumer stopped early or something raised: stop the child
            _kill(pid)
            reader.join()
            os.waitpid(pid, 0)
        os.close(read_fd)


def _child(
    read_fd: int,
    write_fd: int,
    blocks: Sequence[B],
    compute: Callable[[B], R],
    pack: Callable[[B, R], object],
) -> NoReturn:
    """Compute and write, nothing else; never return into the parent's code."""
    code = 1
    try:
        os.close(read_fd)
        for block in blocks:
            frame = pickle.dumps(pack(block, compute(block)), protocol=pickle.HIGHEST_PROTOCOL)
            _write_all(write_fd, _HEADER.pack(len(frame)))
            _write_all(write_fd, frame)
        code = 0
    except BaseException:  # the exit code says it; the parent recomputes
        code = 1
    finally:
        os._exit(code)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _drain(fd: int, inbox: queue.SimpleQueue[bytes | None]) -> None:
    """Read frames until end of file (or garbage), then put None."""
    try:
        with open(fd, "rb", closefd=False) as pipe:
            while len(head := pipe.read(_HEADER.size)) == _HEADER.size:
                (size,) = _HEADER.unpack(head)
                if size > _MAX_FRAME:
                    break
                frame = pipe.read(size)
                if len(frame) < size:
                    break
                inbox.put(frame)
    except Exception:  # a broken pipe is a child that sent no more
        pass
    finally:
        inbox.put(None)


def _widen(fd: int) -> None:
    """Let the pipe hold as much as the system allows (Linux: 1 MiB, not 64 KiB): each read
    of the parent's drain thread waits for the GIL, so fewer, larger reads keep the child from
    waiting on a full pipe."""
    with contextlib.suppress(OSError, ImportError, AttributeError):
        import fcntl  # POSIX only, like os.fork

        with open("/proc/sys/fs/pipe-max-size") as limit:
            size = int(limit.read())
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
