#!/usr/bin/env python3
"""The demo's stand-in for the checkout application's telemetry.

No container runs on the local control plane, so nothing serves real traffic. This process plays
the part of the application's metrics for `make demo`: once a second it asks the API server (with
kubectl) which version of the checkout Deployment each environment namespace runs, from the image
tag that Conveyor rendered (`registry.example.com/shop/checkout:${CONVEYOR_VERSION}`), and exposes
on /metrics:

  checkout_error_ratio{namespace="checkout-staging"} 0.21    share of requests answered 5xx
  checkout_version_info{namespace="checkout-staging",version="2.5.0"} 1

A version listed in BROKEN_VERSIONS (comma-separated) answers with a high error ratio, any other
version with a low one. Nothing is scripted in time: when Conveyor rolls an environment back to a
good version, the error ratio falls by itself on the next poll. A namespace with no checkout
Deployment reports no series. /healthz answers 200 per namespace (?namespace=…) when its version
is good, 503 when it is broken, 404 when nothing runs there.

  KUBECONFIG=… BROKEN_VERSIONS=2.5.0 tests/demo-app.py --port-file FILE [--namespace-prefix checkout-]

It listens on 127.0.0.1 on a free port and writes that port to --port-file once it listens.
Runs until SIGTERM or SIGINT.
"""

import argparse
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

HEALTHY_RATIO = 0.004
BROKEN_RATIO = 0.21


def log(msg):
    print("[demo-app] %s" % msg, flush=True)


class Versions:
    """The version each namespace runs, refreshed from the API server."""

    def __init__(self, prefix, broken):
        self.prefix = prefix
        self.broken = broken
        self.lock = threading.Lock()
        self.by_namespace = {}

    def refresh(self):
        try:
            out = subprocess.run(
                ["kubectl", "get", "deployments", "--all-namespaces", "-o", "json"],
                capture_output=True, text=True, timeout=10, check=True,
            ).stdout
        except (subprocess.SubprocessError, OSError) as e:
            log("listing Deployments failed: %s" % getattr(e, "stderr", e))
            return
        seen = {}
        for d in json.loads(out).get("items", []):
            ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
            if name != "checkout" or not ns.startswith(self.prefix):
                continue
            images = [c.get("image", "") for c in d["spec"]["template"]["spec"].get("containers", [])]
            tags = [i.rsplit(":", 1)[1] for i in images if ":" in i.rsplit("/", 1)[-1]]
            if tags:
                seen[ns] = tags[0]
        with self.lock:
            for ns in sorted(set(seen) | set(self.by_namespace)):
                old, new = self.by_namespace.get(ns), seen.get(ns)
                if old != new:
                    if new is None:
                        log("%s: checkout is gone" % ns)
                    else:
                        log("%s runs %s: error ratio %s%s" % (
                            ns, new, self.ratio(new), " (a broken version)" if new in self.broken else ""))
            self.by_namespace = seen

    def ratio(self, version):
        return BROKEN_RATIO if version in self.broken else HEALTHY_RATIO

    def snapshot(self):
        with self.lock:
            return dict(self.by_namespace)


def handler(versions):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            path, _, query = self.path.partition("?")
            if path == "/metrics":
                lines = [
                    "# HELP checkout_error_ratio Share of checkout requests answered with a 5xx status.",
                    "# TYPE checkout_error_ratio gauge",
                ]
                running = sorted(versions.snapshot().items())
                for ns, v in running:
                    lines.append('checkout_error_ratio{namespace="%s"} %s' % (ns, versions.ratio(v)))
                lines += [
                    "# HELP checkout_version_info The checkout version running in a namespace.",
                    "# TYPE checkout_version_info gauge",
                ]
                for ns, v in running:
                    lines.append('checkout_version_info{namespace="%s",version="%s"} 1' % (ns, v))
                self.answer(200, "\n".join(lines) + "\n", "text/plain; version=0.0.4")
            elif path == "/healthz":
                params = dict(p.partition("=")[::2] for p in query.split("&") if p)
                v = versions.snapshot().get(params.get("namespace", ""))
                if v is None:
                    self.answer(404, "no checkout runs in that namespace\n")
                elif v in versions.broken:
                    self.answer(503, "checkout %s: payments failing\n" % v)
                else:
                    self.answer(200, "checkout %s: ok\n" % v)
            else:
                self.answer(404, "not found\n")

        def answer(self, status, body, content_type="text/plain"):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--namespace-prefix", default="checkout-")
    args = parser.parse_args()
    broken = {v.strip() for v in os.environ.get("BROKEN_VERSIONS", "").split(",") if v.strip()}

    versions = Versions(args.namespace_prefix, broken)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler(versions))
    server.daemon_threads = True
    port = server.server_address[1]

    stop = threading.Event()

    def on_signal(*_):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def poll():
        while not stop.is_set():
            versions.refresh()
            stop.wait(1)

    threading.Thread(target=poll, daemon=True).start()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with open(args.port_file + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.replace(args.port_file + ".tmp", args.port_file)
    log("serving /metrics and /healthz on 127.0.0.1:%d; broken versions: %s"
        % (port, ", ".join(sorted(broken)) or "none"))
    while not stop.is_set():
        stop.wait(1)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
