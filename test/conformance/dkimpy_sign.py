# Signs the message on stdin with dkimpy (Debian python3-dkim) and prints the
# DKIM-Signature field alone: argv = key.pem domain selector algorithm [identity].
import sys
import dkim

key_file, domain, selector, algorithm = sys.argv[1:5]
identity = sys.argv[5].encode() if len(sys.argv) > 5 and sys.argv[5] else None
message = sys.stdin.buffer.read()
with open(key_file, 'rb') as f:
    key = f.read()
signature = dkim.sign(message, selector.encode(), domain.encode(), key, identity=identity,
                      canonicalize=(b'relaxed', b'relaxed'), signature_algorithm=algorithm.encode(),
                      include_headers=[b'from', b'to', b'subject', b'date', b'message-id'])
sys.stdout.buffer.write(signature)
