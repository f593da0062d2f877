#!/usr/bin/env python3
# tests/syslog_listen.py: a syslog receiver for t_syslog.sh. MODE tcp|udp|unix,
# ADDR (port or path), OUT: one message per line. TCP framing is parsed
# strictly (RFC 6587 octet counting: LEN SP MSG); a bad frame writes BAD.
import os, socket, sys

mode, addr, out = sys.argv[1], sys.argv[2], sys.argv[3]
f = open(out, "ab", buffering=0)

def put(msg):
    f.write(msg + b"\n")

if mode == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", int(addr)))
    while True:
        put(s.recv(70000))
elif mode == "unix":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(addr)
    while True:
        put(s.recv(70000))
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(addr)))
    s.listen(4)
    while True:
        c, _ = s.accept()
        buf = b""
        while True:
            d = c.recv(65536)
            if not d:
                break
            buf += d
            while True:
                sp = buf.find(b" ")
                if sp < 0:
                    break
                n = buf[:sp]
                if not n.isdigit() or n.startswith(b"0"):
                    put(b"BAD " + buf[:40])
                    sys.exit(1)
                if len(buf) < sp + 1 + int(n):
                    break
                put(buf[sp + 1:sp + 1 + int(n)])
                buf = buf[sp + 1 + int(n):]
        c.close()
