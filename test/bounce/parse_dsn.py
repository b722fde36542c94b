"""Reads a message with Python's email package (independent of our builder).

Usage: /usr/bin/python3 parse_dsn.py < message
Prints one JSON object: the top-level header fields, the parser's defects,
and each MIME part: its type and parameters, its header fields, and its
content as the parser decodes it (text for text/*, header blocks for
message/delivery-status, the enclosed message for message/rfc822).
"""
import email
import email.policy
import json
import sys


def fields(msg):
    return [[k, str(v)] for k, v in msg.items()]


def part_of(p):
    out = {
        "type": p.get_content_type(),
        "params": {k: v for k, v in p.get_params()[1:]} if p.get_params() else {},
        "fields": fields(p),
        "defects": [type(d).__name__ for d in p.defects],
    }
    t = p.get_content_type()
    if t == "message/delivery-status":
        # policy.default parses each block of fields as a message of its own.
        out["blocks"] = [fields(b) for b in p.get_payload()]
    elif t == "message/rfc822":
        inner = p.get_payload()[0]
        out["message"] = {"fields": fields(inner), "body": inner.get_content()}
    elif p.get_content_maintype() == "text":
        out["text"] = p.get_content()
    return out


def main():
    msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
    result = {
        "type": msg.get_content_type(),
        "params": {k: v for k, v in msg.get_params()[1:]} if msg.get_params() else {},
        "fields": fields(msg),
        "defects": [type(d).__name__ for d in msg.defects],
        "multipart": msg.is_multipart(),
        "parts": [part_of(p) for p in msg.iter_parts()] if msg.is_multipart() else [],
    }
    print(json.dumps(result))


main()
