#!/usr/bin/env python3
"""kinto-http.py 11.11 against Syncto: one user's 40 sequential create_record calls, then
get_records, as a Python script using the library would do them.

Usage: kinto_http_py.py SERVER_URL BUCKET
  env KINTO_AUTHORIZATION: the Authorization value ("Bearer ...");
      KINTO_KEYID: sent as X-KeyID when set (bucket "syncto").
Prints one JSON line {"statuses": [...], "listed": N, "ms": T, "error": "..." or null};
exit status 0 when all 40 writes answered 2xx and all 40 are listed. run.mjs runs it.
"""

import json
import os
import sys
import time
import uuid

import kinto_http
from kinto_http.exceptions import KintoException

WRITES = 40


def main():
    server, bucket = sys.argv[1], sys.argv[2]
    keyid = os.environ.get("KINTO_KEYID")
    client = kinto_http.Client(
        server_url=server,
        auth=os.environ["KINTO_AUTHORIZATION"],
        bucket=bucket,
        collection="tabs",
        headers={"X-KeyID": keyid} if keyid else None,
        timeout=20,
    )
    statuses, error = [], None
    # The status of every answer, successes included (the library returns only bodies).
    # Session._session is this thread's requests.Session (kinto-http 11.11).
    client.session._session.hooks["response"].append(
        lambda r, *args, **kwargs: statuses.append(r.status_code)
    )
    start = time.monotonic()
    for i in range(WRITES):
        try:
            client.create_record(id=str(uuid.uuid4()), data={"payload": "python %d" % i})
        except KintoException as e:
            error = error or str(e)[:300]
    ms = round((time.monotonic() - start) * 1000)
    writes = statuses[:]
    try:
        listed = len(client.get_records())
    except KintoException as e:
        listed, error = -1, error or "get_records: " + str(e)[:300]
    print(json.dumps({"statuses": writes, "listed": listed, "ms": ms, "error": error}))
    ok = len(writes) == WRITES and all(200 <= s < 300 for s in writes) and listed == WRITES
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
