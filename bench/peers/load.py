"""python -m bench.peers.load PORT SECONDS FOLDER: check through a running
server from four threads, each on its own keep-alive connection, for
SECONDS; print the checks answered per second."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from bench.peers.ours import ask, connect
from bench.peers.state import load_workload

THREADS = 4


def main() -> None:
    port, seconds, folder = int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
    checks = load_workload(folder / "workload.json").checks
    counts = [0] * THREADS
    stop = time.monotonic() + seconds

    def work(slot: int) -> None:
        connection = connect(port)
        position = slot * 131
        while time.monotonic() < stop:
            key_id, kind, name = checks[position % len(checks)]
            item = {"key_id": key_id, "kind": kind, "name": name}
            ask(connection, "POST", "/v1/check", item)
            position += 1
            counts[slot] += 1
        connection.close()

    pool = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    print(sum(counts) / seconds)


if __name__ == "__main__":
    main()
