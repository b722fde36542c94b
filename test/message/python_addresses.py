# An independent reading of address fields: Python's email package
# (policy.default). One JSON string (a field value) per input line; one JSON
# object per output line: {"ok": true, "mailboxes": [[username, domain], ...],
# "groups": n} or {"ok": false, "error": "..."}.
import json
import sys
from email import policy

for line in sys.stdin:
    value = json.loads(line)
    try:
        header = policy.default.header_factory('from', value)
        result = {
            'ok': True,
            'mailboxes': [[a.username, a.domain] for a in header.addresses],
            'groups': sum(1 for g in header.groups if g.display_name is not None),
        }
    except Exception as err:  # any failure is "Python does not read it"
        result = {'ok': False, 'error': f'{type(err).__name__}: {err}'}
    sys.stdout.write(json.dumps(result) + '\n')
    sys.stdout.flush()
