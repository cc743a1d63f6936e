#!/usr/bin/env python3
"""The OpenAPI document (proto/openapi.json) against the server it describes:

  openapi_check.py PORT KEY VPRM MODEL

PORT: a daemon on the tiny model MODEL started with the HTTP suite's strict limits (section
A: --api-key KEY, --max-responses 8, --max-batch-requests 4, --max-tiles 6, --max-body-bytes
2M, --max-header-bytes 16K); VPRM: the binary (for `vprm openapi`, and a second daemon of
its own for the queue's 429 and 503 and the drain's 503). The oracle is python3-jsonschema
(Draft 2020-12, the dialect of OpenAPI 3.1's schemas):
  - the document served at GET /openapi.json (no key needed) equals proto/openapi.json with
    info.version set to the server's version, and equals `vprm openapi`'s output;
  - it is well formed: OpenAPI 3.1.0, every $ref resolves, every schema is a valid Draft
    2020-12 schema, operation ids are unique, every response has a description, every
    component is used, every example validates against its schema;
  - it names exactly the server's routes (server/http.c's table) and methods (a wrong
    method gets 405 with the documented Allow, an unknown path 404), and exactly the request
    fields the parser knows (proto/request.c's list; a request setting every documented
    field gets no "unknown fields" warning, one setting every optional field to null is
    answered 200), and about 30 edge requests are valid by ScoreRequest's schema exactly
    when the server takes them (no 400);
  - every answer of about 100 calls (each endpoint, each error status: the queue's 429 and
    503 and the drain's 503 from a second daemon) has a status the document lists for its
    operation, the documented content type, the documented headers and no other (beyond
    Date, Content-Type, Content-Length, Connection) and a body valid against the documented
    schema made strict: an object of an answer may hold no property the document does not
    name, so an undocumented response field fails;
  - every status the document lists for an operation was seen, but 500 (no request can
    cause one).
Prints one line per check; exit 1 when one fails.
"""
import copy
import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time

import base64

import jsonschema
from jsonschema import Draft202012Validator, RefResolver

from http_checks import auth_headers, check, exchange, failures

PORT, KEY, VPRM, MODEL = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
HDR = auth_headers(KEY)
DOC = json.load(open("proto/openapi.json"))


def call(method, path, body=None, headers=None, auth=True, port=None):
    conn = http.client.HTTPConnection("127.0.0.1", port or PORT, timeout=120)
    try:
        h = dict(HDR) if auth else {"Content-Type": "application/json"}
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()


def raw(data, port=None):
    """Sends raw bytes, reads one answer: (status, headers, body)."""
    got = exchange(port or PORT, data)
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


# ---- the served document
st, hd, body = call("GET", "/openapi.json", auth=False)
served = json.loads(body) if st == 200 else None
st_m, _, models_body = call("GET", "/v1/models")
version = json.loads(models_body)["version"] if st_m == 200 else None
expected = copy.deepcopy(DOC)
expected["info"]["version"] = version
check(st == 200 and hd.get("content-type") == "application/json",
      "GET /openapi.json without a key: 200 application/json (got %d %s)" % (st, hd.get("content-type")))
check(served == expected, "the served document is proto/openapi.json with info.version = "
      "/v1/models' version (%s)" % version)
cli = subprocess.run([VPRM, "openapi"], capture_output=True, timeout=60)
check(cli.returncode == 0 and json.loads(cli.stdout) == served,
      "`vprm openapi` prints the served document (exit %d)" % cli.returncode)
st_h, hd_h, body_h = call("HEAD", "/openapi.json", auth=False)
check(st_h == 200 and body_h == b"", "HEAD /openapi.json: 200, no body")

# ---- well formed
check(DOC.get("openapi") == "3.1.0" and DOC["info"].get("title") and DOC["info"].get("version"),
      "openapi 3.1.0 with info.title and info.version")


def walk(node, path="#"):
    """Yields (json pointer, node) for every dict and list in the tree."""
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, path + "/" + k.replace("~", "~0").replace("/", "~1"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, "%s/%d" % (path, i))


def resolve(ref):
    node = DOC
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part]
    return node


refs = [n["$ref"] for _, n in walk(DOC) if isinstance(n, dict) and isinstance(n.get("$ref"), str)]
broken = []
for ref in refs:
    try:
        resolve(ref)
        if not ref.startswith("#/"):
            broken.append(ref)
    except (KeyError, IndexError, TypeError):
        broken.append(ref)
check(refs and not broken, "all %d $refs resolve inside the document (broken: %s)" % (len(refs), broken[:3]))

bad_schemas = []
for name, schema in DOC["components"]["schemas"].items():
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        bad_schemas.append("%s: %s" % (name, e.message))
check(not bad_schemas, "every one of the %d component schemas is valid Draft 2020-12 (%s)"
      % (len(DOC["components"]["schemas"]), bad_schemas[:2]))

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ops = {}  # (path, METHOD) -> operation
for p, item in DOC["paths"].items():
    for m, op in item.items():
        if m in METHODS:
            ops[(p, m.upper())] = op
ids = [op.get("operationId") for op in ops.values()]
check(all(ids) and len(set(ids)) == len(ids), "operation ids present and unique: %s" % ids)
no_desc = [ptr for ptr, n in walk(DOC) if re.search(r"/responses/[^/]+$", ptr) and isinstance(n, dict)
           and "$ref" not in n and not n.get("description")]
check(not no_desc, "every response object has a description (%s)" % no_desc[:3])
used = set(refs)
for op in ops.values():
    for req in op.get("security", DOC.get("security", [])):
        used.update("#/components/securitySchemes/" + k for k in req)
unused = ["#/components/%s/%s" % (kind, name) for kind, group in DOC["components"].items()
          for name in group if "#/components/%s/%s" % (kind, name) not in used]
check(not unused, "every component is used (unused: %s)" % unused)

# examples against their schemas (the media type's schema, through the document's refs)
# The schemas of answers, made strict: an object may hold only the properties the document
# names. Request schemas stay as published (unknown request fields are allowed).
answer_schemas = set()
todo = [n for ptr, n in walk(DOC["paths"]) if re.search(r"/responses/[^/]+$", ptr)]
todo += list(DOC["components"]["responses"].values())
while todo:
    node = todo.pop()
    for _, n in walk(node):
        if isinstance(n, dict) and isinstance(n.get("$ref"), str) and n["$ref"] not in answer_schemas:
            if n["$ref"].startswith("#/components/schemas/"):
                answer_schemas.add(n["$ref"])
                todo.append(resolve(n["$ref"]))
check(not answer_schemas & {"#/components/schemas/ScoreRequest", "#/components/schemas/BatchRequest"}
      and "#/components/schemas/ScoreResponse" in answer_schemas,
      "answer schemas: %s" % sorted(r.split("/")[-1] for r in answer_schemas))
STRICT = copy.deepcopy(DOC)
for ref in answer_schemas:
    for _, n in walk(STRICT["components"]["schemas"][ref.split("/")[-1]]):
        if isinstance(n, dict) and "properties" in n and "additionalProperties" not in n:
            n["additionalProperties"] = False
RESOLVER_DOC = RefResolver.from_schema(STRICT)


def errors_of(schema, value):
    v = Draft202012Validator(schema, resolver=RESOLVER_DOC)
    return ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message) for e in v.iter_errors(value)]


n_examples = 0
for ptr, n in walk(DOC["paths"], "#/paths"):
    if isinstance(n, dict) and "schema" in n and "examples" in n:
        for name, ex in n["examples"].items():
            ex = resolve(ex["$ref"]) if "$ref" in ex else ex
            errs = errors_of(n["schema"], ex["value"])
            n_examples += 1
            check(not errs, "example %s (%s) validates against its schema %s" % (name, ptr, errs[:2]))
check(n_examples >= 4, "%d examples checked" % n_examples)

# ---- routes and methods: the document against server/http.c's table and the daemon
src = open("server/http.c").read()
table = src[src.index("static const vp_route routes[]"):]
table = table[:table.index("};")]
code_routes = set(re.findall(r'\{"(/[^"]*)", "(GET|POST)", (true|false)', table))
code_ops = {(p, m) for p, m, _ in code_routes}
check(code_ops == set(ops), "the document's operations are server/http.c's routes (only in the "
      "code: %s; only in the document: %s)" % (sorted(code_ops - set(ops)), sorted(set(ops) - code_ops)))
auth_code = {(p, m): a == "true" for p, m, a in code_routes}
for (p, m), op in sorted(ops.items()):
    documented_open = op.get("security", DOC["security"]) == []
    check(documented_open == (not auth_code.get((p, m), True)),
          "%s %s: the document says %s, the code %s" % (m, p, "no key" if documented_open else "key",
                                                       "no key" if not auth_code.get((p, m), True) else "key"))

# ---- request fields: the document against proto/request.c's list
req_src = open("proto/request.c").read()
known = req_src[req_src.index("known_fields[] = {"):]
known = set(re.findall(r'"([a-z_]+)"', known[:known.index("};")]))
props = set(DOC["components"]["schemas"]["ScoreRequest"]["properties"])
check(known == props, "ScoreRequest's properties are the parser's fields (only in the code: %s; "
      "only in the document: %s)" % (sorted(known - props), sorted(props - known)))

# ---- answers against the document
seen = set()  # (path, METHOD, status)


HTTP_HEADERS = {"date", "content-type", "content-length", "connection"}


def expect(label, path, method, status, headers, body, want_status=None):
    """Checks one answer against the operation's documented response."""
    op = ops.get((path, method if method != "HEAD" else "GET"))
    if want_status is not None and status != want_status:
        check(False, "%s: status %d, expected %d (%s)" % (label, status, want_status, body[:200]))
        return None
    seen.add((path, method, status))
    resp = op["responses"].get(str(status)) if op else None
    if resp is None:
        check(False, "%s: status %d is not in the document for %s %s" % (label, status, method, path))
        return None
    resp = resolve(resp["$ref"]) if "$ref" in resp else resp
    problems = []
    for name, h in resp.get("headers", {}).items():
        h = resolve(h["$ref"]) if "$ref" in h else h
        value = headers.get(name.lower())
        optional = name.lower() in ("x-client-request-id", "x-queue-time", "x-inference-time")
        if value is None:
            if not optional:
                problems.append("header %s missing" % name)
            continue
        errs = errors_of(h["schema"], value)
        if errs:
            problems.append("header %s=%r: %s" % (name, value, errs[0]))
    extra = set(headers) - HTTP_HEADERS - {n.lower() for n in resp.get("headers", {})}
    if extra:
        problems.append("headers the document does not list: %s" % sorted(extra))
    ctype = headers.get("content-type", "")
    media = resp.get("content", {})
    if ctype not in media:
        problems.append("content type %r not in %s" % (ctype, list(media)))
        check(False, "%s: %s" % (label, problems))
        return None
    parsed = None
    if ctype == "application/json":
        try:
            parsed = json.loads(body)
            problems += errors_of(media[ctype]["schema"], parsed)
        except ValueError as e:
            problems.append("body is not JSON: %s" % e)
    check(not problems, "%s: %d %s, as documented %s" % (label, status, ctype, problems[:3]))
    return parsed


score_ex = resolve(DOC["paths"]["/v1/score"]["post"]["requestBody"]["content"]["application/json"]
                   ["examples"]["text_only"]["$ref"])["value"]
image_ex = resolve(DOC["paths"]["/v1/score"]["post"]["requestBody"]["content"]["application/json"]
                   ["examples"]["with_image"]["$ref"])["value"]
batch_ex = resolve(DOC["paths"]["/v1/score/batch"]["post"]["requestBody"]["content"]["application/json"]
                   ["examples"]["two_items"]["$ref"])["value"]
png = image_ex["image"]
# a PNG signature, then bytes that are no chunk
BROKEN_PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"not a chunk" * 4).decode()

for path in ("/v1/score", "/score"):
    st, hd, b = call("POST", path, score_ex, {"X-Client-Request-Id": "openapi-check-1"})
    j = expect("%s text example" % path, path, "POST", st, hd, b, 200)
    check(hd.get("x-client-request-id") == "openapi-check-1" and j is not None and
          hd.get("x-request-id") == j["id"], "%s: x-request-id is the body's id, the client's id echoed" % path)
st, hd, b = call("POST", "/v1/score", image_ex)
expect("score image example", "/v1/score", "POST", st, hd, b, 200)
every = {"question": "Is 2 + 2 = 4? <image>", "images": [png], "responses": [
    "2 + 2 = 4|So yes.", ["2 + 2 = 5", "So no."], {"steps": ["Two and two.", "Four."]}],
    "step_separator": "|", "max_steps": 2, "max_tiles": 1, "aggregation": "min",
    "return_steps": True, "return_logits": True, "priority": "low", "model": "VisualPRM-8B"}
check(set(every) | {"image"} == props, "the requests below set every documented field")
st, hd, b = call("POST", "/v1/score", every)
j = expect("score with every field", "/v1/score", "POST", st, hd, b, 200)
check(j is not None and "warnings" not in j and all("step_logits" in r for r in j["results"]),
      "every documented field is known to the server (no warnings), logits returned")
one = dict(every, image=png)
del one["images"]
st, hd, b = call("POST", "/v1/score", one)
j = expect("score with image instead of images", "/v1/score", "POST", st, hd, b, 200)
check(j is not None and "warnings" not in j, "\"image\" is known to the server (no warnings)")
nulls = {k: None for k in props - {"question", "responses"}}
st, hd, b = call("POST", "/v1/score", dict(nulls, question="Null options?", responses=["Yes.\n\nNo."]))
j = expect("score with every optional field null", "/v1/score", "POST", st, hd, b, 200)
check(j is not None and j["results"][0]["steps"] == 2 and "step_scores" in j["results"][0]
      and "step_logits" not in j["results"][0], "null means the default (two steps, step_scores, no logits)")
st, hd, b = call("POST", "/v1/score", dict(score_ex, aggregaton="max", return_steps=False))
j = expect("score with an unknown field, no steps", "/v1/score", "POST", st, hd, b, 200)
check(j is not None and j.get("warnings") == ["unknown fields ignored: aggregaton"],
      "an unknown field is named in warnings")
for agg in ("mean", "min", "max", "last", "product"):
    st, hd, b = call("POST", "/v1/score", dict(score_ex, aggregation=agg))
    expect("aggregation %s" % agg, "/v1/score", "POST", st, hd, b, 200)

st, hd, b = call("POST", "/v1/score/batch", batch_ex)
expect("batch example", "/v1/score/batch", "POST", st, hd, b, 200)
st, hd, b = call("POST", "/v1/score/batch", {"priority": "high", "requests": [
    score_ex, {"question": 3, "responses": ["x"]}, dict(score_ex, responses=[]), image_ex]})
j = expect("batch with failing items", "/v1/score/batch", "POST", st, hd, b, 200)
check(j is not None and [("error" in r) for r in j["results"]] == [False, True, True, False]
      and j["results"][1]["error"]["param"] == "requests[1].question"
      and j["results"][3]["id"] == j["id"] + "-3", "batch items: errors in place, ids of the batch's")
st, hd, b = call("POST", "/v1/tokenize", image_ex)
expect("tokenize", "/v1/tokenize", "POST", st, hd, b, 200)
for path in ("/health", "/ready", "/v1/models", "/metrics", "/openapi.json"):
    st, hd, b = call("GET", path)
    expect("GET " + path, path, "GET", st, hd, b, 200)

# errors this daemon gives
for path in ("/v1/score", "/score", "/v1/score/batch", "/v1/tokenize"):
    st, hd, b = call("POST", path, "{\"question\": ")
    expect("%s malformed JSON" % path, path, "POST", st, hd, b, 400)
    st, hd, b = call("POST", path, score_ex, auth=False)
    expect("%s without the key" % path, path, "POST", st, hd, b, 401)
    st, hd, b = call("PUT", path, score_ex)
    j = expect("%s PUT" % path, path, "POST", st, hd, b, 405)
    check(hd.get("allow") == "POST", "%s: Allow: POST" % path)
    st, hd, b = call("POST", path, score_ex, {"Content-Encoding": "gzip"})
    expect("%s gzip body" % path, path, "POST", st, hd, b, 415)
    # declared past the limit by more than the 16 MiB the server reads to drop: answered
    # from the headers
    limit = json.loads(call("GET", "/v1/models")[2])["limits"]["max_body_bytes"]
    st, hd, b = raw(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Length: %d\r\n\r\n" % (path, KEY, limit + (17 << 20))).encode())
    expect("%s body over max_body_bytes" % path, path, "POST", st, hd, b, 413)
    st, hd, b = raw(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Transfer-Encoding: gzip\r\n\r\n" % (path, KEY)).encode())
    expect("%s Transfer-Encoding gzip" % path, path, "POST", st, hd, b, 501)
for path in ("/v1/score", "/score", "/v1/tokenize"):
    st, hd, b = call("POST", path, dict(score_ex, responses=["a"] * 9))
    expect("%s 9 responses" % path, path, "POST", st, hd, b, 413)
    st, hd, b = call("POST", path, dict(score_ex, image="SUkqAAgAAAA="))  # a TIFF header
    expect("%s TIFF image" % path, path, "POST", st, hd, b, 415)
    st, hd, b = call("POST", path, dict(score_ex, image=BROKEN_PNG))
    expect("%s broken PNG" % path, path, "POST", st, hd, b, 422)
st, hd, b = call("POST", "/v1/score/batch", {"requests": [score_ex] * 5})
expect("batch of 5 items", "/v1/score/batch", "POST", st, hd, b, 413)
for path in ("/health", "/ready", "/v1/models", "/metrics", "/openapi.json"):
    st, hd, b = call("POST", path, "{}")
    expect("POST " + path, path, "GET", st, hd, b, 405)
    check(hd.get("allow") == "GET, HEAD", "%s: Allow: GET, HEAD" % path)
    st, hd, b = call("GET", path, None, {"Content-Encoding": "br"})
    expect("GET %s with Content-Encoding br" % path, path, "GET", st, hd, b, 415)
for path in ("/v1/models", "/metrics"):
    st, hd, b = call("GET", path, auth=False)
    expect("GET %s without the key" % path, path, "GET", st, hd, b, 401)
for path in ("/nope", "/v1/score/", "/v1/models/x"):
    st, hd, b = call("GET", path)
    errs = errors_of({"$ref": "#/components/schemas/ErrorResponse"}, json.loads(b)) if st == 404 else ["status %d" % st]
    check(st == 404 and not errs and json.loads(b)["error"]["type"] == "not_found",
          "GET %s: 404 with an ErrorResponse %s" % (path, errs[:1]))

for path in ("/health", "/ready", "/v1/models", "/metrics", "/openapi.json"):
    st, hd, b = raw(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1\r\n"
                     "Content-Length: 2\r\n\r\nab" % (path, KEY)).encode())
    expect("GET %s Content-Lengths that disagree" % path, path, "GET", st, hd, b, 400)
    st, hd, b = raw(("GET %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n" % path).encode())
    expect("GET %s Transfer-Encoding gzip" % path, path, "GET", st, hd, b, 501)
for (path, method) in sorted(ops):
    st, hd, b = call(method, path, score_ex if method == "POST" else None, {"X-Padding": "p" * 17500})
    expect("%s %s with a 17.5 KB header (max_header_bytes 16K)" % (method, path), path, method, st, hd, b, 431)
    check(hd.get("connection") == "close", "%s %s: the 431 closes the connection" % (method, path))

# ---- requests: ScoreRequest's schema takes exactly what the server takes (no 400; a 413
# is a limit of this server's, not a shape the schema could refuse)
edges = [
    {"max_steps": 2.0}, {"max_steps": 0}, {"max_steps": 2.5}, {"max_steps": "2"}, {"max_steps": None},
    {"max_steps": 1e20}, {"max_tiles": 7}, {"step_separator": ""}, {"step_separator": 5},
    {"images": []}, {"image": None, "images": [png]}, {"image": png, "images": [png]},
    {"image": png, "images": None}, {"image": ""}, {"image": 5}, {"images": "x"},
    {"responses": []}, {"responses": [[]]}, {"responses": [{"steps": []}]},
    {"responses": [{"steps": ["a"], "extra": 1}]}, {"responses": [{"step": ["a"]}]},
    {"responses": [1]}, {"responses": [["a", 2]]}, {"responses": "a"}, {"responses": [""]},
    {"return_steps": "true"}, {"return_logits": 1}, {"aggregation": "avg"}, {"aggregation": "MEAN"},
    {"priority": "HIGH"}, {"priority": "low"}, {"question": None}, {"question": 3},
    {"question": ""}, {"question": "", "image": png}, {"question": "", "images": []},
    {"question": "", "images": [png]}, {"model": 5}, {"unknown_field": [1]},
]
disagree = []
for e in edges:
    body = dict({"question": "q", "responses": ["a"]}, **e)
    valid = not errors_of({"$ref": "#/components/schemas/ScoreRequest"}, body)
    st, hd, b = call("POST", "/v1/tokenize", body)
    if valid != (st != 400):
        disagree.append("%s: schema %s, server %d" % (json.dumps(e)[:60], "takes" if valid else "refuses", st))
for body in ([], "x", {"responses": ["a"]}):
    valid = not errors_of({"$ref": "#/components/schemas/ScoreRequest"}, body)
    st, hd, b = call("POST", "/v1/tokenize", body)
    if valid or st != 400:
        disagree.append("%s: schema %s, server %d" % (json.dumps(body), "takes" if valid else "refuses", st))
check(not disagree, "%d edge requests: the schema takes exactly what the server takes %s"
      % (len(edges) + 3, disagree))

# ---- a second daemon for the queue's 429 and 503 and the drain's 503: one request of
# ~21k tokens a pass (about a second here on one thread), one job may wait, for 200 ms
def big(tag, words):
    steps = lambda j: ["%s step %d: " % (tag, k) + " ".join("w%d" % ((j + k * 7 + i) % 97)
                                                             for i in range(words // 8)) for k in range(8)]
    return {"question": "%s: add the numbers." % tag, "responses": [steps(j) for j in range(4)]}


def queue_depth(port):
    text = call("GET", "/metrics", port=port)[2].decode()
    m = re.search(r"^vprm_queue_depth (\S+)$", text, re.M)
    return float(m.group(1)) if m else -1


def second_daemon_checks(second, port2):
    answers = []

    def fire(path, body):
        answers.append((path,) + call("POST", path, body, port=port2))

    words = 512
    while True:
        st, _, b = call("POST", "/v1/tokenize", big("probe", words), port=port2)
        if st != 200 or sum(len(r["input_ids"]) for r in json.loads(b)["responses"]) >= 21000:
            break
        words += 512
    check(st == 200, "second daemon: a request of about 21k tokens (tokenize %d)" % st)
    threads = []

    def start(path, tag):
        body = {"requests": [big(tag, words)]} if path.endswith("batch") else big(tag, words)
        threads.append(threading.Thread(target=fire, args=(path, body)))
        threads[-1].start()

    # the first runs; the second waits (and expires after 200 ms); once /metrics shows it
    # waiting, the rest find the queue full
    start("/v1/score", "r0")
    time.sleep(0.05)
    start("/score", "r1")
    t0 = time.time()
    while queue_depth(port2) < 1 and time.time() - t0 < 2:
        time.sleep(0.005)
    for i, path in enumerate(["/v1/score/batch", "/v1/score", "/score"]):
        start(path, "r%d" % (i + 2))
    for t in threads:
        t.join()
    got = sorted(st for _, st, _, _ in answers)
    for path, st, hd, b in answers:
        expect("second daemon: %s under load" % path, path, "POST", st, hd, b)
    check(got.count(429) == 3 and got.count(503) == 1,
          "the load gave three 429 (queue full) and one 503 (queue timeout): %s" % got)
    # the drain: a long request runs, SIGTERM, then new requests get 503 and /ready 503
    runner = threading.Thread(target=fire, args=("/v1/score", big("last", words)))
    runner.start()
    time.sleep(0.1)
    second.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    for path in ("/v1/score", "/score", "/v1/score/batch", "/v1/tokenize"):
        body = {"requests": [score_ex]} if path.endswith("batch") else score_ex
        try:
            st, hd, b = call("POST", path, body, port=port2)
            expect("%s while draining" % path, path, "POST", st, hd, b, 503)
        except OSError as e:
            check(False, "%s while draining: %s" % (path, e))
    try:
        st, hd, b = call("GET", "/ready", port=port2)
        expect("/ready while draining", "/ready", "GET", st, hd, b, 503)
    except OSError as e:
        check(False, "/ready while draining: %s" % e)
    runner.join()
    check(second.wait(timeout=60) == 0, "the second daemon drained and exited 0")


second = subprocess.Popen([VPRM, "serve", "--model", MODEL, "--port", "0", "--api-key", KEY,
                           "--max-queue", "1", "--queue-timeout-ms", "200", "--batch-tokens", "30000",
                           "--threads", "1", "--no-warmup"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    line = second.stdout.readline()
    port2 = int(line.rsplit(":", 1)[1]) if line.startswith("listening on") else None
    ready = False
    for _ in range(300):
        try:
            if port2 and call("GET", "/ready", port=port2)[0] == 200:
                ready = True
                break
        except OSError:
            pass
        time.sleep(0.1)
    check(ready, "the second daemon started (%r)" % line.strip())
    if ready:
        second_daemon_checks(second, port2)
finally:
    if second.poll() is None:
        second.kill()
        second.wait()

# ---- 429 for every POST route from the request-body budget: an upload of max_bodies_bytes
# held one byte short of its end leaves no room for another body, which is refused before
# it is read; the held one is then finished (its 400)
limits = json.loads(models_body).get("limits", {}) if st_m == 200 else {}
budget = limits.get("max_bodies_bytes")
if budget and budget <= limits.get("max_body_bytes", 0):
    import socket
    holder = socket.create_connection(("127.0.0.1", PORT), timeout=30)
    holder.sendall(("POST /v1/score HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n"
                    % ("".join("%s: %s\r\n" % kv for kv in HDR.items()), budget)).encode()
                   + b"{" + b" " * (budget - 2))
    time.sleep(0.3)
    for path in ("/v1/score", "/v1/score/batch", "/v1/tokenize"):
        st, hd, b = call("POST", path, {"question": "q", "responses": ["a"]})
        if expect("%s while max_bodies_bytes is held" % path, path, "POST", st, hd, b, 429):
            check("max_bodies_bytes" in json.loads(b)["error"]["message"],
                  "%s: the 429 names max_bodies_bytes" % path)
    holder.sendall(b" ")
    check(holder.recv(64).startswith(b"HTTP/1.1 400"), "the held body, sent whole, answered")
    holder.close()
else:
    check(False, "the daemon's limits name max_bodies_bytes <= max_body_bytes (%s)" % limits)

# ---- every documented status seen, but these (checked elsewhere or not caused by a request)
ELSEWHERE = {"500": "no request can cause one"}
unseen = []
for (p, m), op in sorted(ops.items()):
    for s in op["responses"]:
        if (p, m, int(s)) not in seen and s not in ELSEWHERE and "%s %s" % (p, s) not in ELSEWHERE:
            unseen.append("%s %s %s" % (m, p, s))
check(not unseen, "every documented status was answered (%s)" % unseen)
print("openapi: %d answers checked against the document" % len(seen))
sys.exit(1 if failures else 0)
