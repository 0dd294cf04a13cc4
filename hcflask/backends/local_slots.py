"""The local backend's slots: which of this process's jobs wait and which run, per queue.

A slot is free the moment a job's wrapper ends, not at the next monitor tick: a
thread waits on a pidfd per running wrapper (Linux 5.3+) and starts the next
waiting job of that queue at once.  Without it a queue's slots turn over once
per tick (10 slots, 1 s ticks: at most 10 jobs a second per queue, whatever
the machine can do) and the tick itself grows with the jobs it starts.

This view is a cache of the work dirs: the marker and pid files stay the
truth after a restart, and every poll (which sees all the backend's jobs in
flight) brings jobs the view does not know into it.  Where pidfds are not
available the view still works, without the thread: jobs then start when
they are submitted and in each poll, as before.
"""
from __future__ import annotations

import heapq
import logging
import os
import select
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hcflask.backends.base import JobRef

log = logging.getLogger(__name__)


@dataclass
class Running:
    ref: JobRef
    pid: int
    pidfd: int | None
    #: host and start from the job's started.json, read once
    started: dict[str, Any] | None = None


@dataclass
class Queue:
    slots: int
    #: the jobs waiting, by name; their order is the heap's (FIFO by job name), where a job
    #: forgotten meanwhile is skipped when it comes up (so no wait or forget scans the queue)
    waiting: dict[str, JobRef] = field(default_factory=dict)
    order: list[tuple[int, str]] = field(default_factory=list)
    running: dict[str, Running] = field(default_factory=dict)

    def next_waiting(self) -> tuple[str, JobRef] | None:
        while self.order:
            _, name = heapq.heappop(self.order)
            ref = self.waiting.pop(name, None)
            if ref is not None:
                return name, ref
        return None


class Slots:
    """Waiting and running jobs per queue; ``start(ref)`` starts a wrapper and returns its pid
    (None if it could not); ``ended()`` is called when the thread heard wrappers end.  Ticks and
    the thread share the view: the backend calls the methods with ``lock`` held; ``fill`` and the
    thread take it themselves."""

    def __init__(self, start: Callable[[JobRef], int | None], ended: Callable[[], None]) -> None:
        self._start = start
        self._on_end = ended
        self.lock = threading.RLock()
        self._queues: dict[str, Queue] = {}
        self._by_fd: dict[int, tuple[str, str]] = {}
        # made with the thread and closed when it ends (an idle backend holds no descriptor);
        # epoll, not poll: other threads add and remove pidfds while the thread waits on it
        self._epoll: Any = None
        self._kick = -1
        self._thread: threading.Thread | None = None
        self.watching = hasattr(os, "pidfd_open")

    # -- what the backend calls (with the lock held) -------------------------------
    def queue(self, name: str, slots: int) -> Queue:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = Queue(slots)
        q.slots = slots
        return q

    def wait(self, ref: JobRef, slots: int) -> None:
        """``ref`` waits for a slot of its queue (once)."""
        q = self.queue(ref.queue, slots)
        if ref.name not in q.running and ref.name not in q.waiting:
            q.waiting[ref.name] = ref
            heapq.heappush(q.order, (len(ref.name), ref.name))

    def adopt(self, ref: JobRef, pid: int, slots: int) -> None:
        """A running job the view does not know (started before a restart, or by an earlier poll)."""
        q = self.queue(ref.queue, slots)
        if ref.name not in q.running:
            q.running[ref.name] = Running(ref, pid, self._watch(ref.queue, ref.name, pid))

    def waiting(self, ref: JobRef) -> bool:
        q = self._queues.get(ref.queue)
        return q is not None and ref.name in q.waiting

    def running(self, ref: JobRef) -> Running | None:
        """The job's slot: its process is starting (pid 0), or watched (a pidfd: it runs until the
        thread hears it end), or neither (no pidfd: only its work dir can say whether it runs)."""
        q = self._queues.get(ref.queue)
        return q.running.get(ref.name) if q else None

    def forget(self, ref: JobRef) -> None:
        """A job the backend reported final, or cancelled: out of the view."""
        q = self._queues.get(ref.queue)
        if q is None:
            return
        q.waiting.pop(ref.name, None)
        if not q.waiting:
            q.order.clear()
        gone = q.running.pop(ref.name, None)
        if gone is not None and gone.pidfd is not None:
            self._unwatch(gone.pidfd)

    def fill(self) -> list[str]:
        """Start waiting jobs while their queue has free slots; the names started.

        The slots are taken under the lock and the processes started outside it, so a
        tick's poll or submit never waits for a batch of processes to start."""
        with self.lock:
            picked = []
            for q in self._queues.values():
                while q.waiting and len(q.running) < q.slots and (found := q.next_waiting()):
                    job, ref = found
                    q.running[job] = Running(ref, 0, None)  # taken: the process starts below
                    picked.append((q, job, ref))
        started = []
        for q, job, ref in picked:
            pid = self._start(ref)
            with self.lock:
                run = q.running.get(job)
                if run is None or run.pid != 0:  # cancelled while it started: stop it
                    if pid is not None:
                        signal_sessions([pid], signal.SIGTERM)
                    continue
                if pid is None:
                    del q.running[job]
                    continue
                run.pid, run.pidfd = pid, self._watch(ref.queue, job, pid)
                started.append(job)
        return started

    def start_waiting(self) -> list[str]:
        """Have the waiting jobs started: by the thread, so that a tick does not wait for the
        processes to start (the names started here, where there is no thread)."""
        if not self.watching:
            return self.fill()
        self._ensure_thread()
        os.eventfd_write(self._kick, 1)
        return []

    # -- the thread ----------------------------------------------------------------
    def _watch(self, queue: str, name: str, pid: int) -> int | None:
        if not self.watching:
            return None
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:  # ended already: the next poll reads its result
            return None
        except OSError as exc:  # no pidfds here (old kernel, seccomp): polls start jobs instead
            log.warning("local backend: no pidfd (%s): jobs start at each poll", exc)
            self.watching = False
            return None
        self._ensure_thread()
        self._by_fd[fd] = (queue, name)
        self._epoll.register(fd, select.EPOLLIN)
        return fd

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._epoll = select.epoll()
            self._kick = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._epoll.register(self._kick, select.EPOLLIN)
            self._thread = threading.Thread(target=self._loop, args=[self._epoll, self._kick],
                                            name="hc-local-slots", daemon=True)
            self._thread.start()

    def _unwatch(self, fd: int) -> None:
        self._by_fd.pop(fd, None)
        self._epoll.unregister(fd)
        os.close(fd)

    def _loop(self, epoll: Any, kick: int) -> None:
        """Start waiting jobs when asked (``start_waiting``) and when a wrapper ends (its slot is
        free).  Ends when nothing runs or waits, closing its descriptors; ``_ensure_thread``
        starts another, under the same lock."""
        while True:
            events = epoll.poll(5)  # a timeout, so that an idle thread ends
            ended = False
            with self.lock:
                for fd, _ in events:
                    if fd == kick:
                        try:
                            os.eventfd_read(kick)
                        except BlockingIOError:
                            pass
                    elif (where := self._by_fd.get(fd)) is not None:
                        self._ended(fd, *where)
                        ended = True
            if ended:
                self._on_end()
            try:
                self.fill()
            except Exception:  # a failed start must not stop the thread: the next poll tries again
                log.exception("local backend: starting waiting jobs failed")
            with self.lock:
                if not self._by_fd and not any(q.waiting or q.running for q in self._queues.values()):
                    self._thread, self._epoll, self._kick = None, None, -1
                    epoll.close()
                    os.close(kick)
                    return

    def _ended(self, fd: int, queue: str, name: str) -> None:
        """Its slot is free.  The process is reaped by its starter (the backend's ``Popen``), never
        here: a second reaper could collect a pid the first had reaped and another child reused."""
        self._queues[queue].running.pop(name, None)
        self._unwatch(fd)


def signal_sessions(sessions: Sequence[int], signum: int) -> None:
    """Send ``signum`` to every process of the given sessions (a wrapper's pid is its session's
    id): the wrapper, its payload's own process group and whatever the payload started."""
    wanted = set(sessions)
    if not wanted:
        return
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in wanted:  # field 6 of stat: the session id
            try:
                os.kill(int(entry.name), signum)
            except ProcessLookupError:
                continue
