"""Many websocket clients in one process, cheaply: gevent greenlets + websocket-client.

    python tests/streams/swarm.py WS_URL COUNT FINAL_STATUS   (token in $SWARM_TOKEN)

Prints `READY <n>` once every client holds its snapshot, then, after the final status has been
broadcast, one JSON line: how many clients connected, got the snapshot, got the final status,
and the close codes they saw.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
from collections import Counter  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import websocket  # noqa: E402
from gevent.lock import Semaphore  # noqa: E402


def main() -> None:
    url, count, final_status = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    header = [f"Authorization: Bearer {os.environ['SWARM_TOKEN']}"]
    connecting = Semaphore(50)  # stay inside the server's listen backlog
    snapshots: list[int] = []
    finals: list[int] = []
    close_codes: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    all_ready = gevent.event.Event()

    def client() -> None:
        try:
            with connecting:
                ws = websocket.create_connection(url, header=header, timeout=60)
                json.loads(ws.recv())
            snapshots.append(1)
            if len(snapshots) == count:
                all_ready.set()
            while True:
                opcode, frame = ws.recv_data_frame(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    if json.loads(frame.data)["data"]["status"] == final_status:
                        finals.append(1)
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    close_codes[struct.unpack("!H", frame.data[:2])[0]] += 1
                    ws.close()
                    return
        except Exception as exc:  # report, don't hide: the test asserts on the counts
            errors[type(exc).__name__] += 1
            if len(snapshots) + sum(errors.values()) >= count:
                all_ready.set()

    greenlets = [gevent.spawn(client) for _ in range(count)]
    all_ready.wait(timeout=120)
    print(f"READY {len(snapshots)}", flush=True)
    gevent.joinall(greenlets, timeout=60)
    summary = {
        "snapshots": len(snapshots),
        "finals": len(finals),
        "close_codes": {str(k): v for k, v in close_codes.items()},
        "errors": dict(errors),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
