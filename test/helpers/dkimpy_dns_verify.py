"""Verifies every DKIM-Signature of a message with dkimpy, fetching keys from a DNS server.

Usage: /usr/bin/python3 dkimpy_dns_verify.py HOST:PORT < message
Keys are looked up over UDP at HOST:PORT with dnspython (no system resolver,
no cache); the character-strings of the TXT record are joined with nothing
between them (RFC 6376 §3.6.2.2). Prints a JSON list, one object per
signature, top to bottom: {"result", "detail", "domain", "algorithm"} where
result is pass, fail, temperror or error (an exception, detail says which).
"""
import json
import re
import sys

import dkim
import dkim.util
import dns.exception
import dns.rdatatype
import dns.resolver


def main():
    host, _, port = sys.argv[1].rpartition(":")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = int(port)
    # The server is on loopback: only a busy machine makes it slow, so wait generously.
    resolver.timeout = 5
    resolver.lifetime = 20
    resolver.cache = None
    lookups = []
    timeouts = []

    def dnsfunc(name, timeout=5):
        qname = name.decode("ascii") if isinstance(name, bytes) else name
        lookups.append(qname)
        # An authoritative server answers a CNAME into another zone with the CNAME
        # alone; follow it as a recursive resolver would (at most 8 hops).
        for _ in range(8):
            try:
                answer = resolver.resolve(qname, "TXT", raise_on_no_answer=False, search=False)
            except dns.resolver.NXDOMAIN:
                return None
            except dns.exception.Timeout as e:
                timeouts.append(qname)
                raise dkim.DnsTimeoutError("dns timeout: %s" % e)
            records = [rr for rrset in answer.response.answer if rrset.rdtype == dns.rdatatype.TXT for rr in rrset]
            cnames = [rr for rrset in answer.response.answer if rrset.rdtype == dns.rdatatype.CNAME for rr in rrset]
            if records or not cnames:
                break
            qname = cnames[-1].target.to_text()
        if not records:
            return None
        if len(records) > 1:
            print("%s: %d TXT records, using the first" % (qname, len(records)), file=sys.stderr)
        return b"".join(records[0].strings)

    message = sys.stdin.buffer.read()
    try:
        d = dkim.DKIM(message)
    except dkim.DKIMException as e:
        # The message cannot even be parsed: every signature in it is unverifiable.
        header = re.split(rb"\r?\n\r?\n", message, maxsplit=1)[0]
        count = len(re.findall(rb"(?im)^dkim-signature[ \t]*:", header))
        detail = "%s: %s" % (type(e).__name__, e)
        print(json.dumps([{"result": "error", "detail": detail, "domain": "", "algorithm": ""}] * count))
        return

    signatures = [value for name, value in d.headers if name.lower() == b"dkim-signature"]
    results = []
    for i, value in enumerate(signatures):
        try:
            tags = dkim.util.parse_tag_value(re.sub(rb"\s+", b"", value))
        except Exception:
            tags = {}
        entry = {
            "domain": tags.get(b"d", b"").decode("ascii", "replace"),
            "algorithm": tags.get(b"a", b"").decode("ascii", "replace"),
        }
        del timeouts[:]
        try:
            ok = bool(d.verify(idx=i, dnsfunc=dnsfunc))
            entry["result"] = "pass" if ok else "fail"
            entry["detail"] = "" if ok else "signature did not verify"
            # dkimpy's verify() catches its own DnsTimeoutError and returns False:
            # a key that never arrived is a temporary error, not a failed signature.
            if not ok and timeouts:
                entry["result"], entry["detail"] = "temperror", "dns timeout: %s" % ", ".join(timeouts)
        except dkim.DnsTimeoutError as e:
            entry["result"], entry["detail"] = "temperror", str(e)
        except dkim.DKIMException as e:
            entry["result"], entry["detail"] = "fail", "%s: %s" % (type(e).__name__, e)
        if entry["result"] != "pass":
            print("signature %d: %s" % (i, entry["detail"]), file=sys.stderr)
        results.append(entry)
    if results and not lookups:
        raise SystemExit("no DNS lookup was made: the verifier did not run as intended")
    print(json.dumps(results))


main()
