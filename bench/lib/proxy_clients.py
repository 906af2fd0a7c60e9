#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Load clients for bench/proxy_vs_nginx_haproxy.sh (standard library only).

  proxy_clients.py latency PORT RATE SECONDS CONNECTIONS
      Open-loop GET / at a fixed RATE (requests/s) for SECONDS over CONNECTIONS
      keep-alive connections. Each request's latency is measured from the time it was
      *scheduled* to be sent, so a stall delays every request behind it in the numbers
      too (no coordinated omission). Prints one JSON line: n, errors, p50_us, p90_us,
      p99_us, max_us, achieved_rps.

  proxy_clients.py hold PORT COUNT
      Opens COUNT keep-alive connections, sends one GET / on each and reads the whole
      response, then prints "held COUNT ok=N" and keeps them open until stdin closes.

  proxy_clients.py count PORT REQUESTS CONNECTIONS
      Closed loop: exactly REQUESTS GET / over CONNECTIONS keep-alive connections, each
      sending its next request once the previous response has been read (no
      pipelining). For per-request cost measurements (callgrind, strace -c, perf stat)
      that need a fixed request count. Prints one JSON line: n, errors, seconds.
"""
import asyncio
import json
import resource
import selectors
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def latency(port, rate, seconds, nconns):
    loop = asyncio.get_running_loop()
    free = asyncio.Queue()
    for _ in range(nconns):
        free.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    lat = []
    errors = [0]

    async def one(scheduled, record):
        r, w = await free.get()
        try:
            w.write(REQUEST)
            status = await read_response(r)
            if status != 200:
                errors[0] += 1
            elif record:
                lat.append(loop.time() - scheduled)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors[0] += 1
            w.close()
            r, w = await asyncio.open_connection("127.0.0.1", port)
        free.put_nowait((r, w))

    warmup = int(rate * 0.5)
    total = warmup + int(rate * seconds)
    interval = 1.0 / rate
    tasks = []
    start = loop.time()
    for i in range(total):
        scheduled = start + i * interval
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(scheduled, i >= warmup)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    lat.sort()

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1e6) if lat else None

    print(json.dumps({"n": len(lat), "errors": errors[0], "p50_us": pct(0.50),
                      "p90_us": pct(0.90), "p99_us": pct(0.99), "max_us": pct(1.0),
                      "achieved_rps": round(total / elapsed)}))


async def hold(port, count):
    conns = []
    ok = 0
    sem = asyncio.Semaphore(200)

    async def open_one():
        nonlocal ok
        async with sem:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(REQUEST)
                if await read_response(r) == 200:
                    ok += 1
                conns.append((r, w))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                pass

    await asyncio.gather(*(open_one() for _ in range(count)))
    print("held %d ok=%d" % (len(conns), ok), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for _, w in conns:
        w.close()


def count(port, requests, nconns):
    """Fixed number of sequential keep-alive requests per connection, plain sockets."""
    sel = selectors.DefaultSelector()
    left = requests
    done = 0
    errors = 0
    state = {}
    for _ in range(min(nconns, requests)):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        state[s] = bytearray()
        sel.register(s, selectors.EVENT_READ)
        s.sendall(REQUEST)
        left -= 1
    start = time.monotonic()
    while state:
        for key, _ in sel.select():
            s = key.fileobj
            buf = state[s]
            chunk = s.recv(65536)
            if not chunk:
                sys.exit("count: connection closed by the server")
            buf += chunk
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = bytes(buf[:end])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(buf) < end + 4 + length:
                    break
                if int(head.split(b" ", 2)[1]) != 200:
                    errors += 1
                del buf[:end + 4 + length]
                done += 1
                if left > 0:
                    s.sendall(REQUEST)
                    left -= 1
                elif not buf:
                    sel.unregister(s)
                    s.close()
                    del state[s]
                    break
    print(json.dumps({"n": done, "errors": errors, "seconds": round(time.monotonic() - start, 3)}))


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    mode = sys.argv[1]
    if mode == "latency":
        asyncio.run(latency(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]),
                            int(sys.argv[5])))
    elif mode == "hold":
        asyncio.run(hold(int(sys.argv[2]), int(sys.argv[3])))
    elif mode == "count":
        count(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit("usage: proxy_clients.py latency|hold|count ...")


if __name__ == "__main__":
    main()
