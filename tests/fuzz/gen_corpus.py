#!/usr/bin/env python3
"""Write the fuzz targets' seed corpus: valid batches of every frame kind
(tests/fuzz/corpus/wire/) and valid hellos and responses
(tests/fuzz/corpus/handshake/), following docs/NET.md. Run from the
repository root; the output is committed, so run it again only when the
format changes."""
import json
import os
import struct

HEADER = struct.Struct("<BBHIIiQQQQ")  # 48 bytes, little-endian
SEND, LINK, UNLINK, EXIT, MONITOR, DEMONITOR, DOWN, HEARTBEAT, NODE, CHUNK = range(1, 11)
REQUEST, REPLY, LINK_ENDED = 1, 2, 4


def wpid(tag, local):
    return tag << 48 | local


A = wpid(1, 5 << 28 | 17)  # on the sender, generation 5, slot 17
B = wpid(2, 1 << 28 | 3)   # on the receiver


def frame(kind, flags=0, type_=0, reason=0, frm=0, to=0, ref=0, who=0, body=b""):
    return HEADER.pack(1, kind, flags, type_, len(body), reason, frm, to, ref, who) + body


def node(tag, creation, name):
    n = name.encode()
    return frame(NODE, body=struct.pack("<HIH", tag, creation, len(n)) + n)


def chunks(msg_id, send_fields, payload, size):
    out = b""
    for off in range(0, len(payload), size):
        piece = payload[off:off + size]
        info = struct.pack("<QII", msg_id, off, len(payload))
        if off == 0:
            out += frame(CHUNK, body=info + piece, **send_fields)
        else:
            out += frame(CHUNK, body=info + piece)
    return out


wire = {
    "send": frame(SEND, type_=1234, frm=A, to=B, body=b"hello, other node"),
    "send-empty": frame(SEND, type_=1, to=B),
    "request": frame(SEND, REQUEST, 7, frm=A, to=B, ref=1 << 63 | 1, body=b"\x01\x02"),
    "reply": frame(SEND, REPLY, 8, frm=A, to=B, ref=1 << 63 | 1, body=b"\x00" * 16),
    "link": frame(LINK, frm=A, to=B),
    "unlink": frame(UNLINK, frm=A, to=B),
    "exit": frame(EXIT, LINK_ENDED, reason=-3, frm=A, to=B),
    "monitor": frame(MONITOR, frm=A, to=B, ref=1 << 63 | 66),
    "demonitor": frame(DEMONITOR, frm=A, to=B, ref=1 << 63 | 66),
    "down": frame(DOWN, reason=2, to=B, ref=1 << 63 | 66, who=A),
    "heartbeat": frame(HEARTBEAT, ref=42),
    "node-then-send": node(3, 77, "gamma") +
        frame(SEND, REQUEST, 5, frm=wpid(3, 9 << 28 | 1), to=B, ref=5, body=b"fwd"),
    "chunks": chunks(1, dict(flags=REQUEST, type_=9, frm=A, to=B, ref=3),
                     bytes(range(256)) * 10, 1000),
    "chunks-interleaved": b"".join(
        a + b for a, b in zip(
            [chunks(1, dict(type_=1, to=B), b"a" * 300, 100)[i * 164:(i + 1) * 164] for i in range(3)],
            [chunks(2, dict(type_=2, to=B), b"b" * 300, 100)[i * 164:(i + 1) * 164] for i in range(3)])),
}
wire["batch"] = b"".join(wire[k] for k in ("send", "link", "monitor", "heartbeat", "down", "exit"))

nonce = bytes(range(32)).hex()
handshake = {
    "hello": json.dumps({"troupe": 1, "name": "alpha", "creation": 7, "nonce": nonce}),
    "hello-compact": json.dumps({"troupe": 1, "name": "node_2.example-b",
                                 "creation": 4294967295, "nonce": nonce.upper()},
                                separators=(",", ":")),
    "hello-extra": json.dumps({"troupe": 1, "name": "b", "creation": 0, "nonce": nonce,
                               "later": [1, {"x": None}]}),
    "response": json.dumps({"mac": "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"}),
}

for d, seeds in (("wire", wire), ("handshake", handshake)):
    os.makedirs(f"tests/fuzz/corpus/{d}", exist_ok=True)
    for name, data in seeds.items():
        with open(f"tests/fuzz/corpus/{d}/{name}", "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
