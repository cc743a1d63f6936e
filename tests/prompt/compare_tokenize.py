#!/usr/bin/python3
"""Compares `vprm tokenize` outputs (one file per request) with the reference's batch output.

  compare_tokenize.py REQ_DIR REF_BATCH.json

REQ_DIR holds req_NNN.json and the C outputs req_NNN.json.c.json; REF_BATCH.json is
`vprm_ref.py tokenize` on {"requests": [all of them, in name order]}. Every response's
input_ids, score_positions and pieces must be identical."""

import glob
import json
import os
import sys


def main():
    req_dir, ref_path = sys.argv[1], sys.argv[2]
    ref = json.load(open(ref_path, encoding="utf-8"))["results"]
    paths = sorted(glob.glob(os.path.join(req_dir, "req_*.json")))
    paths = [p for p in paths if not p.endswith(".c.json")]
    if len(paths) != len(ref) or not paths:
        print(f"FAIL: {len(paths)} requests but {len(ref)} reference results")
        return 1
    passed = failed = tokens = 0
    for path, r in zip(paths, ref):
        c = json.load(open(path + ".c.json", encoding="utf-8"))
        if "responses" not in r or len(c.get("responses", [])) != len(r["responses"]):
            # checked apart from the pairs: zip() stops at the shorter list
            failed += 1
            print(f"FAIL {os.path.basename(path)}: {len(c.get('responses', []))} responses from vprm, "
                  f"reference: {r.get('error') or len(r['responses'])}")
            continue
        for k, (x, y) in enumerate(zip(c["responses"], r["responses"])):
            tokens += len(y["input_ids"])
            problems = [f for f in ("input_ids", "score_positions", "pieces") if x[f] != y[f]]
            if problems:
                failed += 1
                if failed <= 5:
                    ids_c, ids_r = x["input_ids"], y["input_ids"]
                    d = next((i for i, (a, b) in enumerate(zip(ids_c, ids_r)) if a != b), min(len(ids_c), len(ids_r)))
                    print(f"FAIL {os.path.basename(path)} response {k}: {problems} differ; first id "
                          f"difference at {d}: C {ids_c[d:d + 5]} vs ref {ids_r[d:d + 5]}")
            else:
                passed += 1
    print(f"tokenize vs reference: {passed} passed, {failed} failed ({len(paths)} requests, {tokens} tokens)")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
