"""A set/get round trip through the backlite wheel, installed in a venv of its own."""

import sys

from backlite import Storage

storage = Storage(sys.argv[1] if len(sys.argv) > 1 else "app.db")
storage.set("greeting", {"value": b"hello from Python"})
item = storage.get("greeting")
if item != {"value": b"hello from Python"}:
    sys.exit(f"app: got back {item!r}")
print(item["value"].decode())
