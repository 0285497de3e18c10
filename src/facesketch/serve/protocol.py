"""The demo server's HTTP protocol: uvicorn's h11 protocol with a deadline for each request's head, so a client that
trickles its headers (slowloris) is disconnected instead of holding a connection forever."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class TimedH11Protocol(H11Protocol):
    """h11 where a connection must deliver a whole request head within ``header_timeout`` seconds of opening (or of
    its previous response); otherwise it is closed. Use ``timed_protocol(seconds)`` for a configured class."""

    header_timeout: float = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # a request head has arrived: its body and the work have their own limits

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


def timed_protocol(header_timeout: float) -> type[TimedH11Protocol]:
    """A ``TimedH11Protocol`` class with this deadline (uvicorn builds one instance per connection)."""
    return type("TimedH11Protocol", (TimedH11Protocol,), {"header_timeout": float(header_timeout)})
