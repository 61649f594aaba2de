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
    ap.add_argument("--fast", action="store_true", help="send as fast as the server recognises (it holds the rest "
                                                        "back: nothing is dropped) instead of in real time")
    args = ap.parse_args()
    wave, rate = sf.read(args.audio, dtype="int16", always_2d=True)
    pad = np.zeros((rate, wave.shape[1]), dtype=np.int16)  # a second of silence ends the last utterance
    pcm = np.concatenate([wave, pad])
    with connect(args.url) as ws:
        # --fast: the server reads only as fast as it recognises, so a file is never dropped to keep up
        ws.send(json.dumps({"sample_rate": rate, "channels": wave.shape[1],
                            "backpressure": "block" if args.fast else "drop-oldest"}))
        lost = []

        def receive() -> None:
            for message in ws:
                print(message, flush=True)
                m = json.loads(message)
                if m.get("type") == "end" and (m.get("dropped") or m.get("audio_dropped_s")):
                    lost.append(f"the server dropped {m['dropped']} utterance(s) and {m['audio_dropped_s']} s of "
                                "audio to keep up (use --fast to send a file without loss)")

        reader = threading.Thread(target=receive)
        reader.start()
        step = rate // 10  # 100 ms
        for i in range(0, len(pcm), step):
            ws.send(pcm[i : i + step].tobytes())
            if not args.fast:
                time.sleep(0.1)
        ws.send(json.dumps({"type": "end"}))
        reader.join()
    if lost:
        raise SystemExit(f"warning: {lost[0]}")


if __name__ == "__main__":
    main()
