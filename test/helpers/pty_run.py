#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal, as a person at a terminal would.

Usage: pty_run.py SCRIPT_JSON COMMAND ARGS...
SCRIPT_JSON is a list of [prompt, reply] pairs: once `prompt` shows in the
output after the previous reply, `reply` is typed. Prints JSON {"output", "code", "timedOut"}:
everything the terminal showed (the terminal's own echo included) and the
exit status. Every wait is bounded (10 s a prompt, 30 s in all).
"""
import json, os, pty, select, sys, time

script = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])

output = b''
deadline = time.monotonic() + 30
timed_out = False
step = 0
seen_upto = 0
prompt_deadline = time.monotonic() + 10

def read_some(timeout):
    global output
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return True
    try:
        data = os.read(fd, 4096)
    except OSError:
        return False
    if not data:
        return False
    output += data
    return True

alive = True
while alive and time.monotonic() < deadline:
    if step < len(script) and script[step][0] in output[seen_upto:].decode('utf8', 'replace'):
        seen_upto = len(output)
        os.write(fd, script[step][1].encode('utf8'))
        step += 1
        prompt_deadline = time.monotonic() + 10
        continue
    if step < len(script) and time.monotonic() > prompt_deadline:
        timed_out = True
        break
    alive = read_some(0.2)
else:
    timed_out = alive

if timed_out:
    os.kill(pid, 9)
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
print(json.dumps({'output': output.decode('utf8', 'replace'), 'code': code, 'timedOut': timed_out}))
