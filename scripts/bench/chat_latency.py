#!/usr/bin/env python3
"""Chat latency while a file transfer runs, for scripts/bench-files.

Usage: chat_latency.py LANLINK ADDR [--idle S] [--interval S] -- CMD [ARG...]

Starts two `LANLINK chat` clients in script mode on ADDR (separate
connections, room `lobby`): `lattx`, whose stdin this program writes, and
`latrx`, whose stdout it reads. Every INTERVAL seconds (default 0.01) it
writes a line `lat SEQ` to lattx and notes the time; when latrx prints
`[lobby] <lattx> lat SEQ` the difference is that message's latency (one
clock: both ends are this process). Pipes and the two clients' stdin/stdout
handling are included, so the figure is an upper bound on the server path.

First IDLE seconds (default 2) with nothing else running, then CMD runs
(e.g. `lanlink get ADDR big.bin -o DIR`); messages keep going every
INTERVAL until it exits. Messages are grouped by when they were sent: before
CMD started ("idle") or while it ran ("during"). Prints the command's own
output, then one line per group and a final machine-readable line:

  RESULT cmd_rc=0 cmd_s=5.12 idle_n=200 idle_p50_ms=.. idle_p99_ms=.. idle_max_ms=..
         during_n=512 during_p50_ms=.. during_p99_ms=.. during_max_ms=.. lost=0

A message that never arrives (within 2 s after the end) counts as lost.
The server must allow 1/INTERVAL chat messages per second
(`--rate-burst 1000 --rate-per-second 1000`).
"""
import subprocess
import sys
import threading
import time


def percentile(sorted_values, p):
    if not sorted_values:
        return float('nan')
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def main():
    args = sys.argv[1:]
    if '--' not in args or len(args) < 4:
        sys.exit(__doc__)
    split = args.index('--')
    opts, cmd = args[:split], args[split + 1:]
    lanlink, addr = opts[0], opts[1]
    idle, interval = 2.0, 0.01
    rest = opts[2:]
    while rest:
        if rest[0] == '--idle':
            idle = float(rest[1])
        elif rest[0] == '--interval':
            interval = float(rest[1])
        else:
            sys.exit('unknown option ' + rest[0])
        rest = rest[2:]

    rx = subprocess.Popen([lanlink, 'chat', '--name', 'latrx', addr],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, bufsize=0)
    time.sleep(0.2)
    tx = subprocess.Popen([lanlink, 'chat', '--name', 'lattx', addr],
                          stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, bufsize=0)

    sent = {}          # seq -> send time (ns)
    received = {}      # seq -> receive time (ns)
    warm_seen = threading.Event()
    prefix = b'[lobby] <lattx> '

    def reader():
        for line in rx.stdout:
            now = time.monotonic_ns()
            if not line.startswith(prefix):
                continue
            body = line[len(prefix):].split()
            if len(body) == 2 and body[0] == b'lat':
                received[int(body[1])] = now
            elif body and body[0] == b'warm':
                warm_seen.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()

    def say(text):
        tx.stdin.write(text.encode() + b'\n')

    # Wait until both are in the room and a line goes through.
    deadline = time.monotonic() + 15
    n = 0
    while not warm_seen.is_set():
        if time.monotonic() > deadline or tx.poll() is not None or rx.poll() is not None:
            sys.exit('chat_latency: the chat clients did not connect')
        n += 1
        say('warm %d' % n)
        warm_seen.wait(0.1)
    time.sleep(0.2)

    seq = 0
    cmd_proc = None
    cmd_start = cmd_end = None
    t0 = time.monotonic()
    next_at = t0
    while True:
        now = time.monotonic()
        if cmd_proc is None and now - t0 >= idle:
            cmd_start = time.monotonic_ns()
            cmd_proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
            out_chunks = []
            out_thread = threading.Thread(
                target=lambda: out_chunks.append(cmd_proc.stdout.read()), daemon=True)
            out_thread.start()
        if cmd_proc is not None and cmd_proc.poll() is not None:
            cmd_end = time.monotonic_ns()
            break
        if now >= next_at:
            seq += 1
            sent[seq] = time.monotonic_ns()
            say('lat %d' % seq)
            next_at += interval
            if next_at < now:          # fell behind (loaded machine): don't burst
                next_at = now + interval
        time.sleep(max(0.0, min(next_at - time.monotonic(), 0.005)))

    out_thread.join(5)
    # Stragglers.
    end_wait = time.monotonic() + 2
    while time.monotonic() < end_wait and len(received) < len(sent):
        time.sleep(0.02)
    for p in (tx, rx):
        try:
            p.stdin.close()
        except OSError:
            pass
    for p in (tx, rx):
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()

    out = b''.join(out_chunks).decode(errors='replace').rstrip()
    for line in out.splitlines():
        print('  cmd> ' + line)

    groups = {'idle': [], 'during': []}
    lost = 0
    for s, ts in sent.items():
        if s not in received:
            lost += 1
            continue
        lat_ms = (received[s] - ts) / 1e6
        groups['idle' if ts < cmd_start else 'during'].append(lat_ms)
    result = ['cmd_rc=%d' % cmd_proc.returncode,
              'cmd_s=%.2f' % ((cmd_end - cmd_start) / 1e9)]
    for name in ('idle', 'during'):
        v = sorted(groups[name])
        p50, p99, mx = percentile(v, 50), percentile(v, 99), (v[-1] if v else float('nan'))
        print('  chat latency %-6s n=%-4d p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms'
              % (name, len(v), p50, p99, mx))
        result += ['%s_n=%d' % (name, len(v)), '%s_p50_ms=%.2f' % (name, p50),
                   '%s_p99_ms=%.2f' % (name, p99), '%s_max_ms=%.2f' % (name, mx)]
    result.append('lost=%d' % lost)
    print('RESULT ' + ' '.join(result))


if __name__ == '__main__':
    main()
