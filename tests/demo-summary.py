#!/usr/bin/env python3
"""The summary at the end of `make demo`, and the check that the story happened.

  kubectl get pipeline/checkout releases -n checkout -o json \\
    | tests/demo-summary.py --good 2.4.1 --bad 2.5.0 --failing-in staging

Prints, from the Pipeline and its Releases: each environment's phase and running version, the
history of the environment where the bad release failed, and the bad release's journey with its
health checks. Then checks the story the demo tells: the good release runs everywhere but in the
environments before the failing one, the bad release was rolled back automatically there (history
entry RolledBack, the rollback entry on top, Pipeline Stalled with reason RolledBack) and never
went further. Exits 1 naming what did not happen.
"""

import argparse
import json
import sys


def table(header, rows, indent="  "):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print(indent + "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())


def clock(ts):
    """`2024-05-01T10:11:12Z` → `10:11:12`."""
    return ts[11:19] if ts and len(ts) >= 19 else "-"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--good", required=True, help="version that walks every environment")
    parser.add_argument("--bad", required=True, help="version whose checks fail")
    parser.add_argument("--failing-in", required=True, help="environment where the bad version fails")
    args = parser.parse_args()

    items = json.load(sys.stdin)["items"]
    pipeline = next(o for o in items if o["kind"] == "Pipeline")
    releases = {o["spec"]["version"]: o for o in items if o["kind"] == "Release"}
    spec_envs = pipeline["spec"]["environments"]
    status = pipeline.get("status", {})
    envs = {e["name"]: e for e in status.get("environments", [])}
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    problems = []

    # --- Where each environment stands.
    print("Environments of pipeline checkout")
    rows = []
    for s in spec_envs:
        e = envs.get(s["name"], {})
        cur = e.get("current") or {}
        note = "rolled back from %s" % cur["rollbackOf"] if cur.get("rollbackOf") else ""
        rows.append([s["name"], s["namespace"], e.get("phase", "-"), cur.get("version", "-"),
                     clock(cur.get("since")), note])
    table(["ENVIRONMENT", "NAMESPACE", "PHASE", "VERSION", "SINCE", ""], rows)
    for t in ("Ready", "Reconciling", "Stalled"):
        c = conditions.get(t)
        if c and c["status"] == "True":
            print("  Pipeline %s=True (%s): %s" % (t, c.get("reason"), c.get("message", "")))

    # --- The failing environment's history.
    failing = envs.get(args.failing_in, {})
    history = failing.get("history", [])
    print("\nHistory of %s (newest first)" % args.failing_in)
    table(["DEPLOYMENT", "VERSION", "RESULT", "STARTED", "FINISHED", "NOTE"],
          [[h["deploymentId"], h["version"], h["result"], clock(h.get("startedAt")), clock(h.get("finishedAt")),
            "rollback of %s" % h["rollbackOf"] if h.get("rollbackOf") else ""] for h in history])
    for h in history:
        if h.get("reason") and h["result"] != "Succeeded":
            print("  %s: %s" % (h["deploymentId"], h["reason"]))

    # --- The bad release's journey and its checks.
    bad = releases.get(args.bad)
    if bad is None:
        problems.append("no Release with version %s" % args.bad)
    else:
        rs = bad.get("status", {})
        print("\nJourney of Release %s (furthest environment: %s)" % (bad["metadata"]["name"], rs.get("environment", "-")))
        journey = rs.get("environments", [])
        table(["ENVIRONMENT", "PHASE", "DEPLOYMENT", "STARTED", "FINISHED"],
              [[j["name"], j.get("phase", "-"), j.get("deploymentId", "-"), clock(j.get("startedAt")),
                clock(j.get("finishedAt"))] for j in journey])
        for j in journey:
            for c in j.get("checks", []):
                print("  %s check %s (%s): %s — %s" % (j["name"], c["name"], c["type"], c["result"], c.get("message", "")))

    # --- Did the story happen?
    names = [s["name"] for s in spec_envs]
    if args.failing_in not in names:
        problems.append("the pipeline has no environment %s" % args.failing_in)
    else:
        at = names.index(args.failing_in)
        for i, name in enumerate(names):
            e = envs.get(name, {})
            want = args.bad if i < at else args.good
            cur = (e.get("current") or {}).get("version")
            if e.get("phase") != "Healthy" or cur != want:
                problems.append("%s is %s running %s, not Healthy running %s" % (name, e.get("phase"), cur, want))
            if i > at and any(h["version"] == args.bad for h in e.get("history", [])):
                problems.append("%s went further than %s: %s ran it" % (args.bad, args.failing_in, name))
        top = history[0] if history else {}
        if top.get("version") != args.good or top.get("result") != "Succeeded" or not top.get("rollbackOf"):
            problems.append("the newest deployment in %s is not a successful rollback to %s: %s" % (args.failing_in, args.good, top))
        failed = [h for h in history if h["version"] == args.bad]
        if not failed or failed[0]["result"] != "RolledBack":
            problems.append("%s has no RolledBack entry for %s in its history" % (args.failing_in, args.bad))
        stalled = conditions.get("Stalled", {})
        if stalled.get("status") != "True" or stalled.get("reason") != "RolledBack":
            problems.append("the Pipeline is not Stalled with reason RolledBack: %s" % stalled)
        if bad is not None:
            step = next((j for j in bad.get("status", {}).get("environments", []) if j["name"] == args.failing_in), {})
            if step.get("phase") != "Failed" or not any(c["result"] == "Failed" for c in step.get("checks", [])):
                problems.append("Release %s does not record a failed check in %s: %s" % (args.bad, args.failing_in, step))

    if problems:
        print("\nThe story did not happen as told:", file=sys.stderr)
        for p in problems:
            print("  - " + p, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
