"""uvicorn's httptools protocol, sending a response's head and body in one write.

ASGI sends a response as two messages, ``http.response.start`` then ``http.response.body``,
and uvicorn writes each to the socket as it comes: two ``send()`` system calls and two TCP
segments per answer, for the stub and for the client reading it. Here each request's cycle
writes through a :class:`HeadHoldingTransport`, which keeps the head back until the first
body write and sends both at once.

The head waits only as long as the application takes between the two messages; the stub
sends them back to back. It leans on how uvicorn's ``RequestResponseCycle`` writes (checked
by ``tests/integration/probe_stub/test_protocol.py`` against the version in uv.lock):

* only through its ``transport`` attribute, which it reads at each write;
* the head in one ``write``; before it, only an interim ``100 Continue``;
* at least one ``write`` per body message, even an empty one, except for a HEAD request,
  whose head this protocol therefore does not hold;
* and ``close()`` when the application fails or stops before the body is complete.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeadHoldingTransport:
    """The transport as one request's cycle sees it: the response head waits for the next
    write, or for ``close``/``abort``, and leaves together with it.

    The head is the first write that is not an interim response (``HTTP/1.1 1xx``, which
    leaves at once). Everything else is the transport's own, so that the stub can still
    close or abort the connection through the cycle. It keeps no reference to the cycle:
    the cycle refers to it, and a reference cycle would leave every request's objects to
    the garbage collector.
    """

    __slots__ = ("_head", "_transport", "_waiting_for_head")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._waiting_for_head = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif self._waiting_for_head and data[9:10] != b"1":  # b"HTTP/1.1 100 Continue"
            self._waiting_for_head = False
            self._head = bytes(data)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        # The head goes out first, as it would have without the wrapper; abort() then drops
        # whatever the transport still buffers.
        self.flush()
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol`` whose request cycles write through a
    :class:`HeadHoldingTransport`; pass the class itself as ``uvicorn.Config(http=...)``."""

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # The cycle has not run yet: its task starts at the loop's next turn. There is no
        # new cycle for a WebSocket upgrade; a HEAD answer writes no body to carry the head.
        if cycle is not previous and cycle is not None and self.scope["method"] != "HEAD":
            cycle.transport = cast(asyncio.Transport, HeadHoldingTransport(self.transport))
