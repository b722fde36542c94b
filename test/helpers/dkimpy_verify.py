"""Verifies every DKIM-Signature of a message with dkimpy (independent of our signer).

Usage: /usr/bin/python3 dkimpy_verify.py RECORDS_JSON < message
RECORDS_JSON maps "selector._domainkey.domain" to a TXT value. The message
comes on stdin (argv could not hold 25 MB). Prints a JSON list of booleans,
one per signature, top to bottom; reasons for failures go to stderr.
"""
import json
import sys
import types

# dkimpy's DNS plugin imports dnspython, which pulls in httpx and costs half a
# second per run; every lookup here goes through dnsfunc anyway, so stand in
# a plugin that refuses real DNS.
_dnsplug = types.ModuleType("dkim.dnsplug")


def _no_dns(name, timeout=5):
    raise RuntimeError("real DNS lookup attempted for %r" % (name,))


_dnsplug.get_txt = _no_dns
sys.modules["dkim.dnsplug"] = _dnsplug

import dkim  # noqa: E402


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        records = {k.lower().rstrip("."): v for k, v in json.load(f).items()}

    def dnsfunc(name, timeout=5):
        # dkimpy asks with bytes and a trailing dot: b"s1._domainkey.example.com."
        value = records.get(name.decode("ascii").lower().rstrip("."))
        return value.encode("ascii") if value is not None else None

    message = sys.stdin.buffer.read()
    d = dkim.DKIM(message)
    count = sum(1 for name, _ in d.headers if name.lower() == b"dkim-signature")
    results = []
    for i in range(count):
        try:
            ok = bool(d.verify(idx=i, dnsfunc=dnsfunc))
        except dkim.DKIMException as e:
            print("signature %d: %s" % (i, e), file=sys.stderr)
            ok = False
        if not ok:
            print("signature %d: fail" % i, file=sys.stderr)
        results.append(ok)
    print(json.dumps(results))


main()
