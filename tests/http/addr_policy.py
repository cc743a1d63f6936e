"""The image fetcher's address policy (server/fetch.c vp_addr_is_private) against the
IANA special-purpose address registries, with Python's ipaddress for the prefix
arithmetic. Reads nothing; prints addresses (one a line) with --list, or checks the
tool's verdicts read from stdin with --check.

Policy: refuse every address the registries mark as not globally reachable, plus
multicast, site-local and the deprecated IPv4-compatible ::/96; judge an IPv6 address
that embeds an IPv4 one (mapped, translated, NAT64 64:ff9b::/96, 6to4 2002::/16) by that
IPv4 address, since a gateway would connect there. Where a block is mostly not global
but holds a few global addresses (192.0.0.0/24, 2001::/23), the whole block is refused:
no image is served from protocol anycast addresses. Registry facts as of 2025
(RFC 6890, 8190, 9602, 9637, 9780)."""
import ipaddress
import random
import sys

REFUSE, ALLOW = "refuse", "allow"
V4 = [  # (block, verdict)
    ("0.0.0.0/8", REFUSE), ("10.0.0.0/8", REFUSE), ("100.64.0.0/10", REFUSE),
    ("127.0.0.0/8", REFUSE), ("169.254.0.0/16", REFUSE), ("172.16.0.0/12", REFUSE),
    ("192.0.0.0/24", REFUSE), ("192.0.2.0/24", REFUSE), ("192.31.196.0/24", ALLOW),
    ("192.52.193.0/24", ALLOW), ("192.88.99.0/24", REFUSE), ("192.168.0.0/16", REFUSE),
    ("192.175.48.0/24", ALLOW), ("198.18.0.0/15", REFUSE), ("198.51.100.0/24", REFUSE),
    ("203.0.113.0/24", REFUSE), ("224.0.0.0/4", REFUSE), ("240.0.0.0/4", REFUSE),
]
# (block, verdict, offset of an embedded IPv4 address in bytes, or None)
V6 = [
    ("::/96", REFUSE, None), ("::ffff:0:0/96", None, 12), ("::ffff:0:0:0/96", None, 12),
    ("64:ff9b::/96", None, 12), ("64:ff9b:1::/48", REFUSE, None), ("100::/64", REFUSE, None),
    ("100:0:0:1::/64", REFUSE, None), ("2001::/23", REFUSE, None),
    ("2001:db8::/32", REFUSE, None), ("2002::/16", None, 2), ("2620:4f:8000::/48", ALLOW, None),
    ("3fff::/20", REFUSE, None), ("5f00::/16", REFUSE, None), ("fc00::/7", REFUSE, None),
    ("fe80::/10", REFUSE, None), ("fec0::/10", REFUSE, None), ("ff00::/8", REFUSE, None),
]
V4_NETS = [(ipaddress.ip_network(n), v) for n, v in V4]
V6_NETS = [(ipaddress.ip_network(n), v, off) for n, v, off in V6]


def expected(addr):
    a = ipaddress.ip_address(addr)
    if a.version == 4:
        hits = [v for n, v in V4_NETS if a in n]
        return hits[0] if hits else ALLOW
    hits = [(v, off) for n, v, off in V6_NETS if a in n]
    assert len(hits) <= 1, f"{addr}: overlapping blocks in the table"
    if not hits:
        return ALLOW
    v, off = hits[0]
    if off is None:
        return v
    return expected(str(ipaddress.IPv4Address(a.packed[off:off + 4])))


def samples(rng):
    out = []
    def around(net):
        first, last = int(net.network_address), int(net.broadcast_address)
        top = (1 << net.max_prefixlen) - 1
        picks = [first, last, max(first - 1, 0), min(last + 1, top)]
        picks += [rng.randint(first, last) for _ in range(6)]
        return [ipaddress.ip_address(p) if net.version == 4 else ipaddress.IPv6Address(p)
                for p in picks]
    for n, _ in V4_NETS:
        out += around(n)
    for n, v, off in V6_NETS:
        out += around(n)
        if off is not None:  # embed both refused and allowed IPv4 addresses
            for v4 in ["127.0.0.1", "10.1.2.3", "169.254.169.254", "8.8.8.8", "1.1.1.1",
                       "100.64.1.1", "192.0.0.9", "224.0.0.1", "203.0.113.5", "93.184.216.34"]:
                b = bytearray(n.network_address.packed)
                b[off:off + 4] = ipaddress.IPv4Address(v4).packed
                out.append(ipaddress.IPv6Address(bytes(b)))
    out += [ipaddress.IPv4Address(rng.getrandbits(32)) for _ in range(2000)]
    out += [ipaddress.IPv6Address(rng.getrandbits(128)) for _ in range(1000)]
    out += [ipaddress.IPv6Address((0x2 << 125) | rng.getrandbits(125)) for _ in range(2000)]
    return [str(a) for a in out]


def main():
    rng = random.Random(20261127)
    if sys.argv[1:] == ["--list"]:
        print("\n".join(samples(rng)))
        return 0
    bad = total = refused = 0
    for line in sys.stdin:
        verdict, addr = line.split()
        want = expected(addr)
        total += 1
        refused += want == REFUSE
        if verdict != want:
            bad += 1
            if bad <= 20:
                print(f"MISMATCH {addr}: tool says {verdict}, the registries say {want}")
    print(f"address policy: {total} addresses ({refused} to refuse), {bad} mismatches")
    return 1 if bad or total < 3000 else 0


if __name__ == "__main__":
    sys.exit(main())
