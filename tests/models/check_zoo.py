#!/usr/bin/python3
"""Run genie-run on every model of the zoo and compare with PyTorch.

    check_zoo.py GENIE_RUN GENIE_RUNTIME ZOO_DIR

Makes the zoo (make_models.py) into ZOO_DIR when it has no manifest, starts
a genie-runtime on a free loopback port and another listening on DPDK memif
(dpdk://memif:SOCKET, no hugepages), runs every model through genie-run on
the local target, on tcp:// and on dpdk://, and checks each output against PyTorch's
within the manifest's tolerances (|genie - torch| <= atol + rtol * |torch|,
elementwise). Prints one line per model and target; exits 1 on any
mismatch or failure, 77 (skip) when torch, torchvision, onnx or numpy are
missing. Then it runs resnet18 and gpt2_decoder over tcp once more, in new
sessions, and checks that they send under 5% of the weights' bytes: the
runtime kept them, keyed by content, from the first sessions.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
except ImportError:
    print("check_zoo: numpy missing; skipping")
    sys.exit(77)


def start_runtime(binary, workdir, listen="tcp://127.0.0.1:0", tag="tcp"):
    port_file = os.path.join(workdir, "port-" + tag)
    args = [binary, "--listen", listen, "--backend", "cpu"]
    if tag == "tcp":
        args += ["--port-file", port_file]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=open(os.path.join(
            workdir, "runtime-%s.log" % tag), "w"))
    if tag != "tcp":
        # A DPDK listener has no port to report: its memif socket, made
        # once the runtime listens, says it is up.
        sock = listen.split("memif:", 1)[1]
        for _ in range(200):
            if os.path.exists(sock) or proc.poll() is not None:
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            raise RuntimeError("genie-runtime (%s) did not start; see "
                               "runtime-%s.log" % (tag, tag))
        return proc, 0
    for _ in range(200):
        if os.path.exists(port_file) and os.path.getsize(port_file) > 0:
            with open(port_file) as f:
                return proc, int(f.read().strip())
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("genie-runtime did not start; see runtime.log")


UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def session_sent(text):
    """Bytes genie-run reports in 'session total: sent X UNIT'."""
    for line in text.splitlines():
        if line.startswith("session total: sent "):
            num, unit = line.split()[3:5]
            return float(num) * UNITS[unit.rstrip(",")]
    raise RuntimeError("no 'session total' line in genie-run output")


def compare(got, want, rtol, atol):
    if got.shape != want.shape:
        return False, "shape %s, expected %s" % (got.shape, want.shape)
    if got.dtype != want.dtype:
        return False, "dtype %s, expected %s" % (got.dtype, want.dtype)
    if got.dtype.kind in "iub":
        bad = int(np.count_nonzero(got != want))
        return bad == 0, "%d elements differ" % bad
    g = got.astype(np.float64)
    w = want.astype(np.float64)
    err = np.abs(g - w)
    excess = err - (atol + rtol * np.abs(w))
    worst = float(excess.max()) if excess.size else -1.0
    return worst <= 0, "max abs err %.3g, max rel err %.3g" % (
        float(err.max()) if err.size else 0.0,
        float((err / np.maximum(np.abs(w), 1e-30)).max()) if err.size else 0)


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    genie_run, runtime, zoo = sys.argv[1:]
    here = os.path.dirname(os.path.abspath(__file__))
    manifest = os.path.join(zoo, "manifest.json")
    if not os.path.exists(manifest):
        r = subprocess.run([sys.executable, os.path.join(here,
                                                         "make_models.py"),
                            zoo])
        if r.returncode == 77:
            return 77
        if r.returncode != 0:
            print("check_zoo: make_models.py failed (%d)" % r.returncode)
            return 1
    with open(manifest) as f:
        models = json.load(f)["models"]
    failures = 0
    sent, runs = {}, {}
    work = tempfile.mkdtemp(prefix="genie-zoo-")
    proc, port = start_runtime(runtime, work)
    sock = os.path.join(work, "memif.sock")
    dproc, _ = start_runtime(runtime, work, "dpdk://memif:" + sock, "dpdk")
    try:
        for target in ["local", "tcp://127.0.0.1:%d" % port,
                       "dpdk://memif:" + sock]:
            for m in models:
                name = m["name"]
                mdir = os.path.join(zoo, name)
                kind = target.split(":")[0]
                out = os.path.join(work, kind, name)
                cmd = [genie_run, os.path.join(mdir, "model.onnx"),
                       "--output-dir", out, "--target", target]
                for i in m["inputs"]:
                    cmd += ["--input", "%s=%s" % (
                        i["name"], os.path.join(mdir, "inputs",
                                                i["name"] + ".npy"))]
                r = subprocess.run(cmd, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
                if r.returncode == 0 and target.startswith("tcp"):
                    sent[name] = session_sent(r.stdout)
                    runs[name] = cmd
                if r.returncode != 0:
                    failures += 1
                    print("FAIL %-16s %-6s genie-run exited %d:\n%s" % (
                        name, kind, r.returncode,
                        r.stdout[-2000:]))
                    continue
                notes = []
                ok_all = True
                for o in m["outputs"]:
                    got = np.load(os.path.join(out, o["name"] + ".npy"))
                    want = np.load(os.path.join(mdir, "expected",
                                                o["name"] + ".npy"))
                    ok, note = compare(got, want, m["tolerances"]["rtol"],
                                       m["tolerances"]["atol"])
                    ok_all &= ok
                    notes.append("%s: %s" % (o["name"], note))
                if not ok_all:
                    failures += 1
                print("%s %-16s %-6s %s" % ("ok  " if ok_all else "FAIL",
                                            name, kind,
                                            "; ".join(notes)))
        # The weight cache: the same model loaded in a second session (a
        # new genie-run process) attaches to the weights the first left on
        # the runtime and sends none of them.
        for name in ["resnet18", "gpt2_decoder"]:
            if name not in runs:
                continue
            weights = os.path.getsize(os.path.join(zoo, name, "model.onnx"))
            r = subprocess.run(runs[name], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            again = session_sent(r.stdout) if r.returncode == 0 else -1
            ok = (r.returncode == 0 and sent[name] >= 0.9 * weights and
                  again < 0.05 * weights)
            failures += not ok
            print("%s %-16s second session sent %.0f B (first %.0f B, "
                  "model file %d B)" % ("ok  " if ok else "FAIL", name,
                                        again, sent[name], weights))
    finally:
        for p, tag in [(proc, "tcp"), (dproc, "dpdk")]:
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = -1
            if rc != 0:
                failures += 1
                print("FAIL genie-runtime (%s) exited %d; see "
                      "%s/runtime-%s.log" % (tag, rc, work, tag))
    print("check_zoo: %d model runs, %d failures" % (
        3 * len(models), failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
