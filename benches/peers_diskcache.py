"""diskcache's side of the peer benchmark (benches/peers.rs runs it; not run on its own).

    python3 peers_diskcache.py --fill DIR
    python3 peers_diskcache.py DIR OPS SEED OUT GO

The same workload as the Rust engines: 100 keys, 90% get / 9% set / 1% delete, values of
1-495 random bytes; each call timed with perf_counter_ns and written as "op ns" lines to OUT,
after waiting for the file GO to exist (every process has opened its cache by then).
"""
import os
import random
import sys
import time

import diskcache

KEYS = 100


def key(k):
    return b"peers-key-%06d" % k


def value(rng):
    return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 495)))


def main():
    if sys.argv[1] == "--fill":
        cache = diskcache.Cache(sys.argv[2])
        rng = random.Random(0)
        for k in range(KEYS):
            cache.set(key(k), value(rng))
        cache.close()
        return
    directory, ops, seed, out, go = sys.argv[1:6]
    ops, seed = int(ops), int(seed)
    cache = diskcache.Cache(directory)
    rng = random.Random(seed)
    while not os.path.exists(go):
        time.sleep(0.001)
    clock = time.perf_counter_ns
    lines = []
    for _ in range(ops):
        k = key(rng.randrange(KEYS))
        roll = rng.randrange(100)
        if roll < 90:
            start = clock()
            cache.get(k)
            lines.append("get %d" % (clock() - start))
        elif roll < 99:
            v = value(rng)
            start = clock()
            cache.set(k, v)
            lines.append("set %d" % (clock() - start))
        else:
            start = clock()
            cache.delete(k)
            lines.append("delete %d" % (clock() - start))
    cache.close()
    with open(out, "w") as f:
        f.write("\n".join(lines))
        f.write("\n")


if __name__ == "__main__":
    main()
