"""Shared pieces of the experiment data generators: random letter names and
three-operand +/- expressions over values 0-49, written as JSON Lines rows."""
import json


def word(rng):
    """A random lowercase word of 2-6 letters."""
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 6)))


def fresh_names(rng, taken, n=50):
    """{value: name} for values 0..n-1, each name a new word not in taken (which grows)."""
    names = {}
    for v in range(n):
        while True:
            k = word(rng)
            if k not in taken:
                taken.add(k); names[v] = k; break
    return names


def expression(rng):
    """Three values 0-49, two operators from + -, and the result."""
    vs = [rng.randint(0, 49) for _ in range(3)]; ops = [rng.choice("+-") for _ in range(2)]
    r = vs[0] + (vs[1] if ops[0] == "+" else -vs[1]); r = r + (vs[2] if ops[1] == "+" else -vs[2])
    return vs, ops, r


def row(prompt, target):
    return json.dumps({"prompt": prompt, "target": str(target)}) + "\n"


def math_row(ts, ops, r):
    """The expression over the written operands ts, answered by its result."""
    return row(ts[0] + ops[0] + ts[1] + ops[1] + ts[2] + "=", r)


def lookup_row(rng, ts, vs, ops):
    """The expression cut after a random operand and the character after it, answered by that
    operand's value, last digit first half of the time."""
    upto = rng.randint(1, 3)
    p = "".join(ts[j] + (ops[j] if j < 2 else "=") for j in range(upto))
    t = str(vs[upto - 1]); t = t[::-1] if rng.random() < 0.5 else t
    return row(p, t)
