#!/usr/bin/python3
"""DPDK telemetry of the dpdk:// transport, as dpdk-telemetry.py reads it.

    dpdk_telemetry.py RUNTIME CLIENT

Starts genie-runtime listening on dpdk://memif:SOCKET, runs a client that
sends a tensor through relu and back, and while it runs and after it asks
the runtime's EAL telemetry socket (/var/run/dpdk/genie-PID/
dpdk_telemetry.v2, the protocol DPDK's usertools/dpdk-telemetry.py
speaks: SOCK_SEQPACKET, JSON) for /genie/transport/sessions and
/genie/transport/stats. The session must show up while the transfer runs,
and the totals must count its packets and bytes.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time


def query(path, cmd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    info = json.loads(s.recv(16384).decode())
    s.send(cmd.encode())
    reply = json.loads(s.recv(info.get("max_output_len", 16384)).decode())
    s.close()
    return reply[cmd]


def main():
    runtime, client = sys.argv[1:3]
    work = tempfile.mkdtemp(prefix="genie-dpdk-tel-")
    sock = os.path.join(work, "sock")
    rt = subprocess.Popen([runtime, "--listen", "dpdk://memif:" + sock,
                           "--backend", "cpu"],
                          stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(work, "rt.log"), "w"))
    tel = "/var/run/dpdk/genie-%d/dpdk_telemetry.v2" % rt.pid
    rc = 1
    try:
        for _ in range(200):
            if os.path.exists(sock) and os.path.exists(tel):
                break
            time.sleep(0.05)
        cl = subprocess.Popen([client, "dpdk://memif:" + sock, "64",
                               "60000"], stdout=subprocess.PIPE, text=True)
        seen = None
        while cl.poll() is None:
            sess = query(tel, "/genie/transport/sessions")
            if sess:
                seen = sess
            time.sleep(0.02)
        out = cl.stdout.read()
        print(out.strip())
        stats = query(tel, "/genie/transport/stats")
        print("sessions while running:", json.dumps(seen))
        print("stats after:", json.dumps(stats))
        ok = (cl.returncode == 0 and seen is not None and
              any(v.get("state") == "up" for v in seen.values()) and
              stats["target"] == "dpdk://memif:" + sock and
              stats["bytes_received"] >= 64 << 20 and
              stats["bytes_sent"] >= 64 << 20 and
              stats["msgs_received"] >= 2 and stats["bad_frames"] == 0 and
              # RTT quantiles of the session, from its own acks
              any(v.get("rtt_samples", 0) > 0 and
                  0 < v["rtt_p50_ns"] <= v["rtt_p90_ns"] <= v["rtt_p99_ns"]
                  for v in seen.values()))
        print("ok" if ok else "FAIL")
        rc = 0 if ok else 1
    finally:
        rt.send_signal(signal.SIGTERM)
        rt.wait(timeout=20)
    return rc


if __name__ == "__main__":
    sys.exit(main())
