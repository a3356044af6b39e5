"""What the HTTP benchmarks share: database URLs, free ports, and where the CPU of a round went.

The figures of a shared 2-core machine move with whatever else runs; CPU per request (of
the API server's workers, of the benchmark database's PostgreSQL backends and of the load generator) moves
much less, and says where a request's cost is.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit, urlunsplit


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rpartition(")")[2].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


class CpuMeter:
    """CPU spent by the server's workers and by the benchmark database's backends between two reads."""

    def __init__(self, server_pid: int, owner_url: str, database: str):
        self.server_pid, self.owner_url, self.database = server_pid, owner_url, database

    def read(self) -> dict[str, dict[int, float]]:
        import psycopg

        with psycopg.connect(self.owner_url, autocommit=True) as conn:
            backends = [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [self.database])]
        return {"server": {p: cpu_s(p) for p in children(self.server_pid)},
                "postgres": {p: cpu_s(p) for p in backends}}

    @staticmethod
    def spent(before: dict, after: dict) -> dict[str, float]:
        return {group: sum(cpu - before[group].get(pid, 0.0) for pid, cpu in after[group].items())
                for group in after}


def cpu_text(cpu_ms: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in cpu_ms.items())


class LeanHTTP:
    """A load generator's HTTP/1.1 client: requests pre-rendered as bytes, responses read by
    Content-Length, the connection kept while the server keeps it. ``http.client`` costs about half a
    millisecond of CPU per request, which on 2 cores is CPU the server under test does not get.
    """

    def __init__(self, port: int, timeout: float = 30):
        self.address, self.timeout = ("127.0.0.1", port), timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
        """Send one request, read its whole answer; the status code. Raises OSError on a broken connection."""
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        for attempt in (1, 2):
            if self.sock is None:
                self.sock = socket.create_connection(self.address, timeout=self.timeout)
                self.buffer = b""
            try:
                self.sock.sendall(payload)
                return self._response()
            except (ConnectionError, OSError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _response(self) -> int:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, closing = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                closing = True
        while len(rest) < length:
            self.buffer = rest
            self._fill()
            rest = self.buffer
        self.buffer = rest[length:]
        if closing:
            self.close()
        return status

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""
