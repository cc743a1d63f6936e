#!/usr/bin/python3
"""Compares a `vprm score` response with the reference's for the same request.

  parity_compare.py C.json REF.json [--tol 1e-4] [--label NAME]

Every step's two logits must agree to a relative error |c - r| / max(|r|, 0.1) <= tol
(the floor keeps logits that cross zero from dividing by ~0); step counts, step scores
(to 1e-5), scores and rankings (where scores are not within 1e-6 of a tie; exact ties in
both, from identical responses, must keep index order) must match.
Prints one line: worst relative error, where, and pass/fail; exit 1 on failure."""

import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("c")
    ap.add_argument("ref")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--label", default="")
    ap.add_argument("--expect-tie", action="store_true",
                    help="fail unless two responses tie exactly in both (duplicated responses)")
    a = ap.parse_args()
    c = json.load(open(a.c))
    r = json.load(open(a.ref))
    problems = []
    worst, where, n_logits = 0.0, "-", 0
    rc, rr = c["results"], r["results"]
    if len(rc) != len(rr):
        problems.append(f"{len(rc)} results vs {len(rr)} in the reference")
    for i, (x, y) in enumerate(zip(rc, rr)):
        if x["steps"] != y["steps"] or len(x["step_logits"]) != len(y["step_logits"]):
            problems.append(f"response {i}: {x['steps']} steps vs {y['steps']}")
            continue
        for k, (lc, lr) in enumerate(zip(x["step_logits"], y["step_logits"])):
            for j in range(2):
                n_logits += 1
                err = abs(lc[j] - lr[j]) / max(abs(lr[j]), 0.1)
                if err > worst:
                    worst, where = err, f"response {i} step {k} {'+-'[j]} ({lc[j]:.6g} vs {lr[j]:.6g})"
            if abs(x["step_scores"][k] - y["step_scores"][k]) > 1e-5:
                problems.append(f"response {i} step {k}: score {x['step_scores'][k]} vs {y['step_scores'][k]}")
        if abs(x["score"] - y["score"]) > 1e-5:
            problems.append(f"response {i}: aggregate {x['score']} vs {y['score']}")
    scores = [y["score"] for y in rr]
    cscores = [x["score"] for x in rc]
    pairs = [(i, j) for i in range(len(scores)) for j in range(i + 1, len(scores))]
    # an exact tie in both (identical responses) has one stable order; only close but
    # unequal scores may rank either way
    exact = [(i, j) for i, j in pairs if j < len(cscores) and scores[i] == scores[j] and cscores[i] == cscores[j]]
    near_tie = any(abs(scores[i] - scores[j]) < 1e-6 and (i, j) not in exact for i, j in pairs)
    if not near_tie and c["ranking"] != r["ranking"]:
        problems.append(f"ranking {c['ranking']} vs {r['ranking']}")
    if a.expect_tie and (not exact or near_tie):
        problems.append("no exact tie in both (--expect-tie): the stable order is not tested")
    if worst > a.tol:
        problems.append(f"relative error {worst:.3g} over {a.tol:g}")
    ok = not problems
    print(f"{a.label}: {n_logits} logits, worst relative error {worst:.3g} at {where}: "
          f"{'ok' if ok else 'FAIL: ' + '; '.join(problems[:5])}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
