"""Shared pieces of the experiment data generators: random letter names and
three-operand +/- expressions over values 0-49, written as JSON Lines rows."""
import json


def letters(rng, n):
    """n random lowercase letters."""
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))


def word(rng):
    """A random lowercase word of 2-6 letters."""
    return letters(rng, rng.randint(2, 6))


def new_key(rng, taken, key_len=0):
    """A random key not in taken: key_len letters, or a word() of 2-6 when key_len is 0."""
    while True:
        k = letters(rng, key_len) if key_len else word(rng)
        if k not in taken:
            return k


def new_keys(rng, taken, n, key_len=0):
    """n distinct new_key()s."""
    keys = []
    while len(keys) < n:
        keys.append(new_key(rng, taken | set(keys), key_len))
    return keys


def fresh_names(rng, taken, n=50):
    """{value: name} for values 0..n-1, each name a new word not in taken (which grows)."""
    names = {}
    for v in range(n):
        while True:
            k = word(rng)
            if k not in taken:
                taken.add(k); names[v] = k; break
    return names


def evaluate(vs, ops):
    """vs[0] ops[0] vs[1] ops[1] vs[2], with + and - only."""
    r = vs[0]
    for v, op in zip(vs[1:], ops):
        r += v if op == "+" else -v
    return r


def expression(rng):
    """Three values 0-49, two operators from + -, and the result."""
    vs = [rng.randint(0, 49) for _ in range(3)]; ops = [rng.choice("+-") for _ in range(2)]
    return vs, ops, evaluate(vs, ops)


def named_expression(rng, names, p):
    """expression(), each operand written as its name in names with probability p, else as digits:
    (written operands, values, operators, result)."""
    vs, ops, r = expression(rng)
    return [names[v] if rng.random() < p else str(v) for v in vs], vs, ops, r


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


def write_name_sets(rng, names, out, n_compose):
    """The sets of a composition over number names that only mA knows, written to the folder out:
    augment_names_lookup.jsonl  20000 lookups of the names for mA (lookup_row)
    eval_name_math.jsonl        300 NAME-MATH expressions, then
    compose_name_math.jsonl     n_compose more, none repeating an earlier one
    augment_names.json          the names, {value: name}
    Operands are names with probability 0.7, and every expression holds at least one name."""
    def expr():
        ts, vs, ops, r = named_expression(rng, names, 0.7)
        if all(t.isdigit() for t in ts):
            i = rng.randrange(3); ts[i] = names[vs[i]]
        return ts, vs, ops, r
    with open(out + "/augment_names_lookup.jsonl", "w") as f:
        for _ in range(20000):
            ts, vs, ops, r = expr()
            f.write(lookup_row(rng, ts, vs, ops))
    seen = set()
    for name, n in (("eval_name_math", 300), ("compose_name_math", n_compose)):
        with open(f"{out}/{name}.jsonl", "w") as f:
            made = 0
            while made < n:
                ts, vs, ops, r = expr()
                line = math_row(ts, ops, r)
                if line in seen: continue
                seen.add(line); made += 1
                f.write(line)
    json.dump(names, open(out + "/augment_names.json", "w"))
