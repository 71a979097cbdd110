"""A Redis that accepts connections and never answers: what a SIGSTOPped Redis looks like to clients."""

import socket
import threading


class FrozenRedis:
    """Listens on a free loopback port, accepts every connection, reads nothing, answers nothing."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self._listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="frozen-redis", daemon=True)

    def __enter__(self) -> "FrozenRedis":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._listener.close()
        for connection in self.connections:
            connection.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections.append(connection)
