#!/usr/bin/env python3
"""Write the fake Sync node's static files for benches/load.sh.

    benches/pages.py DIR PORT

DIR/1.5/1/storage/page10 and page1000 are Sync list answers (`full=1`) of 10
and 1,000 records, DIR/1.5/1/storage/one/rec is one record, and
DIR/1.0/sync/1.5 is the Token Server's answer, whose api_endpoint points at
http://127.0.0.1:PORT/1.5/1. Records are shaped like real Sync records: an
encrypted payload is a JSON object (base64 ciphertext, IV, hex hmac)
serialized into a JSON string, so the `payload` value is full of `\\"`
escapes. Deterministic (seeded), so every run serves the same bytes.
"""

import base64
import json
import os
import random
import re
import sys


def record(rng, i):
    # Real ciphertexts vary: 160–300 random bytes, about 516 bytes a record.
    ciphertext = base64.b64encode(rng.randbytes(rng.randint(160, 300))).decode()
    payload = json.dumps(
        {
            "ciphertext": ciphertext,
            "IV": base64.b64encode(rng.randbytes(16)).decode(),
            "hmac": rng.randbytes(32).hex(),
        },
        separators=(",", ":"),
    )
    rid = base64.urlsafe_b64encode(rng.randbytes(9)).decode()
    return {
        "id": rid,
        # Sync's form, two decimals always (1700000000.40, never .4):
        # written as a marked string, unquoted by dumps() below.
        "modified": "@%.2f@" % (1_700_000_000 + i * 0.37),
        "payload": payload,
        "sortindex": rng.randint(0, 2000),
    }


def dumps(value):
    """Compact JSON, as the node sends it; the marked timestamps unquoted."""
    return re.sub(r'"@([0-9.]+)@"', r"\1", json.dumps(value, separators=(",", ":")))


def main():
    out, port = sys.argv[1], int(sys.argv[2])
    rng = random.Random(8)
    storage = os.path.join(out, "1.5", "1", "storage")
    os.makedirs(os.path.join(storage, "one"), exist_ok=True)
    os.makedirs(os.path.join(out, "1.0", "sync"), exist_ok=True)
    sizes = {}
    for n in (10, 1000):
        records = [record(rng, i) for i in range(n)]
        body = dumps(records)
        with open(os.path.join(storage, f"page{n}"), "w") as f:
            f.write(body)
        sizes[n] = len(body)
    with open(os.path.join(storage, "one", "rec"), "w") as f:
        f.write(dumps(record(rng, 0)))
    token = {
        "id": "bench-token-id",
        "key": "bench-hawk-key",
        "uid": 1,
        "api_endpoint": f"http://127.0.0.1:{port}/1.5/1",
        "duration": 3600,
        "hashalg": "sha256",
    }
    with open(os.path.join(out, "1.0", "sync", "1.5"), "w") as f:
        f.write(json.dumps(token))
    print(f"page10={sizes[10]} page1000={sizes[1000]}")


if __name__ == "__main__":
    main()
