#!/usr/bin/python3
"""Shared-prefix check: a request scored with all its responses together (one packed pass,
common prefix computed once) must give the same logits as each response scored alone.

  split_request.py REQ_DIR OUT_DIR     writes OUT_DIR/all.json and one_K.json (from the
                                       first request with 2+ responses)
  split_request.py --compare OUT_DIR   compares all.json.c.json with one_K.json.c.json"""

import glob
import json
import os
import sys

TOL = 1e-5


def split(req_dir, out):
    os.makedirs(out, exist_ok=True)
    for path in sorted(glob.glob(os.path.join(req_dir, "req_*.json"))):
        req = json.load(open(path, encoding="utf-8"))
        if len(req["responses"]) < 2:
            continue
        json.dump(req, open(os.path.join(out, "all.json"), "w", encoding="utf-8"), ensure_ascii=False)
        for k, resp in enumerate(req["responses"]):
            one = dict(req, responses=[resp])
            json.dump(one, open(os.path.join(out, f"one_{k}.json"), "w", encoding="utf-8"), ensure_ascii=False)
        return 0
    print("FAIL: no request with 2+ responses in", req_dir)
    return 1


def compare(out):
    every = json.load(open(os.path.join(out, "all.json.c.json")))
    worst = 0.0
    shared = every["usage"]["shared_prefix_tokens"]
    for k, res in enumerate(every["results"]):
        alone = json.load(open(os.path.join(out, f"one_{k}.json.c.json")))["results"][0]
        for a, b in zip(res["step_logits"], alone["step_logits"]):
            for j in range(2):
                worst = max(worst, abs(a[j] - b[j]) / max(abs(b[j]), 0.1))
        if res["steps"] != alone["steps"]:
            print(f"FAIL: response {k}: {res['steps']} steps together, {alone['steps']} alone")
            return 1
    ok = worst <= TOL and shared > 0
    print(f"shared prefix ({shared} tokens) vs one by one ({len(every['results'])} responses): "
          f"worst relative error {worst:.3g}: {'ok' if ok else 'FAIL'}"
          + ("" if shared > 0 else " (no prefix was shared)"))
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        sys.exit(compare(sys.argv[2]))
    sys.exit(split(sys.argv[1], sys.argv[2]))
