"""Shared by the checks that fill the queue of a running daemon (the tiny model on the CPU
backend) with requests of one pass each, and read the order of the answers: the order of
the passes (priority.py, fair_share.py)."""
import http.client
import json
import re
import time


def metric(text, name):
    """The value of the sample `name` (with its labels) of a /metrics text, or None."""
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def request(tag, words, priority=None):
    """A text request whose question starts with tag (no two share a prefix past the
    system prompt) and whose four responses have `words` words each, in 8 steps."""
    def steps(j):
        return ["%s step %d: " % (tag, k) + " ".join("w%d" % ((j + k * 7 + i) % 97)
                                                      for i in range(words // 8)) for k in range(8)]
    r = {"question": "%s: add the numbers." % tag, "responses": [steps(j) for j in range(4)]}
    if priority:
        r["priority"] = priority
    return r


class Daemon:
    def __init__(self, port, key):
        self.port, self.key = port, key

    def call(self, method, path, body=None, headers=None, key=None, timeout=120):
        """(status, lower-cased headers, body bytes), with key's (else the default key's)
        Authorization header."""
        h = {"Authorization": "Bearer " + (key or self.key), "Content-Type": "application/json"}
        h.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            conn.close()

    def metrics(self):
        return self.call("GET", "/metrics")[2].decode()

    def tokens(self, req):
        st, _, body = self.call("POST", "/v1/tokenize", json.dumps(req))
        if st != 200:
            raise SystemExit("FAIL: tokenize answered %d: %s" % (st, body[:200]))
        return sum(len(r["input_ids"]) for r in json.loads(body)["responses"])

    def one_pass_words(self):
        """(words, tokens, budget): the words a step of request() needs for 70% or more of
        the pass budget (--batch-tokens), so that a pass takes one request, not two."""
        budget = json.loads(self.call("GET", "/v1/models")[2])["limits"]["batch_tokens"]
        words = 64
        while self.tokens(request("probe", words)) < 0.7 * budget:
            words += 64
        return words, self.tokens(request("probe", words)), budget

    def wait_depth(self, n, limit_s=30):
        """Whether /metrics' vprm_queue_depth reached n within limit_s."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit_s:
            d = metric(self.metrics(), "vprm_queue_depth")
            if d is not None and d >= n:
                return True
            time.sleep(0.01)
        return False
