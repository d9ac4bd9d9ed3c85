"""Reference implementations behind the code family's task table (`distill.code_prompts`): the outputs shown
in each prompt's examples are computed with these."""

from __future__ import annotations

import re
import string


def rle_encode(s):
    out, i = [], 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] == s[i]:
            j += 1
        out.append(f"{s[i]}{j - i}")
        i = j
    return "".join(out)


def rle_decode(s):
    return "".join(ch * int(n) for ch, n in re.findall(r"(\D)(\d+)", s))


def second_largest(nums):
    d = sorted(set(nums), reverse=True)
    return d[1] if len(d) > 1 else None


def word_freq(text):
    out = {}
    for w in text.lower().split():
        out[w] = out.get(w, 0) + 1
    return out


def unique_in_order(items):
    out = []
    for x in items:
        if not out or out[-1] != x:
            out.append(x)
    return out


def dedupe(items):
    seen, out = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def merge_sum(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def running_total(nums):
    out, t = [], 0
    for x in nums:
        t += x
        out.append(t)
    return out


def middle(nums):
    s = sorted(nums)
    n = len(s)
    return float(s[n // 2]) if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def count_primes_below(n):
    return sum(1 for k in range(2, n) if all(k % d for d in range(2, int(k ** 0.5) + 1)))


def caesar(text, k):
    low = string.ascii_lowercase
    return "".join(low[(low.index(c) + k) % 26] if c in low else c for c in text)


def camel_to_snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def snake_to_camel(name):
    parts = name.split("_")
    return parts[0] + "".join(p.capitalize() for p in parts[1:])


def max_gap(nums):
    s = sorted(nums)
    return max((b - a for a, b in zip(s, s[1:])), default=0)


def group_by_length(words):
    out = {}
    for w in words:
        out.setdefault(len(w), []).append(w)
    return out


def first_non_repeating(s):
    for c in s:
        if s.count(c) == 1:
            return c
    return ""


def most_common(items):
    best, best_n = None, 0
    for x in items:
        n = items.count(x)
        if n > best_n:
            best, best_n = x, n
    return best


def interleave(a, b):
    out = []
    for i in range(max(len(a), len(b))):
        if i < len(a):
            out.append(a[i])
        if i < len(b):
            out.append(b[i])
    return out


def insert_sorted(items, x):
    out = list(items)
    i = 0
    while i < len(out) and out[i] <= x:
        i += 1
    out.insert(i, x)
    return out


def binary_search(items, target):
    lo, hi = 0, len(items) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if items[mid] == target:
            return mid
        if items[mid] < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1


def digital_root(n):
    while n >= 10:
        n = sum(int(d) for d in str(n))
    return n


def collatz_steps(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def fizzbuzz(n):
    out = []
    for i in range(1, n + 1):
        out.append("FizzBuzz" if i % 15 == 0 else "Fizz" if i % 3 == 0 else "Buzz" if i % 5 == 0 else str(i))
    return out


def sum_nested(x):
    return sum(sum_nested(y) for y in x) if isinstance(x, list) else x


def depth(x):
    return 1 + max((depth(y) for y in x if isinstance(y, list)), default=0) if isinstance(x, list) else 0


def temperature_label(t):
    return "cold" if t < 10 else "mild" if t < 25 else "hot"


def parse_kv(s):
    return dict(p.split("=", 1) for p in s.split(";") if p)


def mask_card(number):
    return "*" * (len(number) - 4) + number[-4:]


def minutes_to_hours(m):
    return f"{m // 60}:{m % 60:02d}"


def vowel_free_words(words):
    return [w for w in words if not any(c in "aeiouAEIOU" for c in w)]


def char_positions(s, ch):
    return [i for i, c in enumerate(s) if c == ch]


def chunk(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]
