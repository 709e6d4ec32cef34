"""A keep-alive HTTP/1.1 client that does as little as a client can.

It writes each request, headers and body together, in one send, and reads
the answer by its Content-Length: so a figure measured with it is the
server's and the loopback's, not the client's. The standard library's
http.client writes a POST's headers and its body in two sends, which wakes
the server twice, and parses every answer's headers with the email package:
on this machine that alone is about 0.16 ms a request.

Only what the benchmark needs: answers with a Content-Length, no chunked
bodies, no redirects, no TLS.
"""

from __future__ import annotations

import socket

READ_SIZE = 256 * 1024


class LeanConnection:
    def __init__(self, port: int, timeout: float = 60) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.unread = b""

    def request(
        self, method: str, path: str, body: bytes | None, headers: bytes
    ) -> tuple[int, bytes]:
        """Send one request; answer its status and body. `headers` are
        complete lines, each ending in CRLF."""
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + headers
        if body is not None:
            head += b"Content-Length: %d\r\n" % len(body)
        self.socket.sendall(head + b"\r\n" + (body or b""))
        return self.read_answer()

    def read_answer(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.unread:
            self.receive()
        head, _, rest = self.unread.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = content_length(lines[1:])

        self.unread = rest
        while len(self.unread) < length:
            self.receive()
        body, self.unread = self.unread[:length], self.unread[length:]
        return status, body

    def receive(self) -> None:
        chunk = self.socket.recv(READ_SIZE)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.unread += chunk

    def close(self) -> None:
        self.socket.close()


def content_length(lines: list[bytes]) -> int:
    for line in lines:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding":
            raise ConnectionError("a chunked answer; this client reads only lengths")
        if name == b"content-length":
            return int(value)
    return 0
