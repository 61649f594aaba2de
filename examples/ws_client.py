"""Send an audio file to a running `edgeser serve` at real-time pace and print each result.

    edgeser serve &                                   # ws://127.0.0.1:8765
    python examples/ws_client.py edgeser/samples/kids_talking.wav

Any process can do the same: send 16-bit little-endian PCM as binary messages (after an optional
{"sample_rate": ..., "channels": ...} text message), then {"type": "end"}; read one JSON message per
utterance until {"type": "end"}.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np
import soundfile as sf
from websockets.sync.client import connect


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("audio")
    ap.add_argument("--url", default="ws://127.0.0.1:8765")
    ap.add_argument("--fast", action="store_true", help="send as fast as possible instead of in real time")
    args = ap.parse_args()
    wave, rate = sf.read(args.audio, dtype="int16", always_2d=True)
    pad = np.zeros((rate, wave.shape[1]), dtype=np.int16)  # a second of silence ends the last utterance
    pcm = np.concatenate([wave, pad])
    with connect(args.url) as ws:
        ws.send(json.dumps({"sample_rate": rate, "channels": wave.shape[1]}))

        def receive() -> None:
            for message in ws:
                print(message, flush=True)

        reader = threading.Thread(target=receive)
        reader.start()
        step = rate // 10  # 100 ms
        for i in range(0, len(pcm), step):
            ws.send(pcm[i : i + step].tobytes())
            if not args.fast:
                time.sleep(0.1)
        ws.send(json.dumps({"type": "end"}))
        reader.join()


if __name__ == "__main__":
    main()
