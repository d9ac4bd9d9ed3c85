"""Deterministic generator of diverse English prompts for distilling a target model into a PARD draft.

Three families, written for this project (not taken from any benchmark):
  * code: "Complete the code I provided." stubs with >>> examples, and "Write a Python function ..." requests,
    over ~85 small list/string/dict/math tasks (the examples' outputs are computed from reference code);
  * math: grade-school word problems and simple algebra from ~30 templates with random names, items, numbers;
  * general: explanations, advice, lists and short writing from topic lists x instruction templates.

`prompts(n, seed)` returns n distinct prompts (a third of each family, shuffled together).
"""
from __future__ import annotations

import math
import random
import re
import string

# ----------------------------------------------------------------------------------------------------------------
# code family
# ----------------------------------------------------------------------------------------------------------------


def _rle_encode(s):
    out, i = [], 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] == s[i]:
            j += 1
        out.append(f"{s[i]}{j - i}")
        i = j
    return "".join(out)


def _rle_decode(s):
    return "".join(ch * int(n) for ch, n in re.findall(r"(\D)(\d+)", s))


def _second_largest(nums):
    d = sorted(set(nums), reverse=True)
    return d[1] if len(d) > 1 else None


def _word_freq(text):
    out = {}
    for w in text.lower().split():
        out[w] = out.get(w, 0) + 1
    return out


def _unique_in_order(items):
    out = []
    for x in items:
        if not out or out[-1] != x:
            out.append(x)
    return out


def _dedupe(items):
    seen, out = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def _merge_sum(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def _running_total(nums):
    out, t = [], 0
    for x in nums:
        t += x
        out.append(t)
    return out


def _middle(nums):
    s = sorted(nums)
    n = len(s)
    return float(s[n // 2]) if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _count_primes_below(n):
    return sum(1 for k in range(2, n) if all(k % d for d in range(2, int(k ** 0.5) + 1)))


def _caesar(text, k):
    low = string.ascii_lowercase
    return "".join(low[(low.index(c) + k) % 26] if c in low else c for c in text)


def _camel_to_snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _snake_to_camel(name):
    parts = name.split("_")
    return parts[0] + "".join(p.capitalize() for p in parts[1:])


def _max_gap(nums):
    s = sorted(nums)
    return max((b - a for a, b in zip(s, s[1:])), default=0)


def _group_by_length(words):
    out = {}
    for w in words:
        out.setdefault(len(w), []).append(w)
    return out


def _first_non_repeating(s):
    for c in s:
        if s.count(c) == 1:
            return c
    return ""


def _most_common(items):
    best, best_n = None, 0
    for x in items:
        n = items.count(x)
        if n > best_n:
            best, best_n = x, n
    return best


def _interleave(a, b):
    out = []
    for i in range(max(len(a), len(b))):
        if i < len(a):
            out.append(a[i])
        if i < len(b):
            out.append(b[i])
    return out


def _insert_sorted(items, x):
    out = list(items)
    i = 0
    while i < len(out) and out[i] <= x:
        i += 1
    out.insert(i, x)
    return out


def _binary_search(items, target):
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


def _digital_root(n):
    while n >= 10:
        n = sum(int(d) for d in str(n))
    return n


def _collatz_steps(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def _fizzbuzz(n):
    out = []
    for i in range(1, n + 1):
        out.append("FizzBuzz" if i % 15 == 0 else "Fizz" if i % 3 == 0 else "Buzz" if i % 5 == 0 else str(i))
    return out


def _sum_nested(x):
    return sum(_sum_nested(y) for y in x) if isinstance(x, list) else x


def _depth(x):
    return 1 + max((_depth(y) for y in x if isinstance(y, list)), default=0) if isinstance(x, list) else 0


def _temperature_label(t):
    return "cold" if t < 10 else "mild" if t < 25 else "hot"


def _parse_kv(s):
    return dict(p.split("=", 1) for p in s.split(";") if p)


def _mask_card(number):
    return "*" * (len(number) - 4) + number[-4:]


def _minutes_to_hours(m):
    return f"{m // 60}:{m % 60:02d}"


def _vowel_free_words(words):
    return [w for w in words if not any(c in "aeiouAEIOU" for c in w)]


def _char_positions(s, ch):
    return [i for i, c in enumerate(s) if c == ch]


def _chunk(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


# Each task: (name, [(arg, type)], return type, description (imperative), reference implementation, examples).
CODE_TASKS = [
    ("count_vowels", [("s", "str")], "int",
     "Return the number of vowels (a, e, i, o, u, in either case) in the string s.",
     lambda s: sum(c in "aeiouAEIOU" for c in s), [("banana",), ("Sky",), ("EDUCATION",)]),
    ("merge_sorted", [("a", "list"), ("b", "list")], "list",
     "Merge two lists a and b that are already sorted in ascending order into one sorted list.",
     lambda a, b: sorted(a + b), [([1, 4, 9], [2, 3, 10]), ([], [5, 6]), ([7], [1, 2, 8])]),
    ("run_length_encode", [("s", "str")], "str",
     "Compress s by replacing each run of the same character with the character followed by the run length.",
     _rle_encode, [("aaabcc",), ("xyz",), ("",)]),
    ("run_length_decode", [("code", "str")], "str",
     "Expand a run-length encoded string such as 'a3b1' (a character followed by a count) back to the text.",
     _rle_decode, [("a3b1c2",), ("z5",), ("",)]),
    ("second_largest", [("nums", "list")], "int",
     "Return the second largest distinct value in nums, or None if there is no such value.",
     _second_largest, [([4, 1, 7, 7, 3],), ([5, 5],), ([10, 20],)]),
    ("is_anagram", [("a", "str"), ("b", "str")], "bool",
     "Check whether a and b are anagrams of each other, ignoring spaces and letter case.",
     lambda a, b: sorted(a.replace(" ", "").lower()) == sorted(b.replace(" ", "").lower()),
     [("listen", "Silent"), ("dusty room", "study ROOM"), ("apple", "paper")]),
    ("word_frequencies", [("text", "str")], "dict",
     "Return a dictionary that maps each lowercase word in text to how many times it appears.",
     _word_freq, [("the cat saw the dog",), ("Go go GO",)]),
    ("chunk_list", [("items", "list"), ("size", "int")], "list",
     "Split items into consecutive chunks of length size; the last chunk may be shorter.",
     _chunk, [([1, 2, 3, 4, 5], 2), (["a", "b", "c"], 3), ([], 4)]),
    ("flatten_once", [("nested", "list")], "list",
     "Flatten a list of lists by one level, keeping the order of the elements.",
     lambda nested: [x for sub in nested for x in sub], [([[1, 2], [3], []],), ([["a"], ["b", "c"]],)]),
    ("rotate_left", [("items", "list"), ("k", "int")], "list",
     "Rotate items to the left by k positions (k may be larger than the length of the list).",
     lambda items, k: items[k % len(items):] + items[:k % len(items)] if items else [],
     [([1, 2, 3, 4, 5], 2), (["x", "y"], 3), ([], 1)]),
    ("capitalize_words", [("sentence", "str")], "str",
     "Return the sentence with the first letter of every word in upper case and the rest unchanged.",
     lambda sentence: " ".join(w[:1].upper() + w[1:] for w in sentence.split(" ")),
     [("hello big world",), ("python is fun",)]),
    ("digit_product", [("n", "int")], "int",
     "Return the product of the decimal digits of the non-negative integer n.",
     lambda n: math.prod(int(d) for d in str(n)), [(234,), (7,), (105,)]),
    ("is_perfect_square", [("n", "int")], "bool",
     "Return True if the non-negative integer n is a perfect square.",
     lambda n: math.isqrt(n) ** 2 == n, [(49,), (50,), (0,)]),
    ("celsius_to_fahrenheit", [("celsius", "float")], "float",
     "Convert a temperature from degrees Celsius to degrees Fahrenheit.",
     lambda c: c * 9 / 5 + 32, [(0,), (100,), (-40,)]),
    ("count_words", [("sentence", "str")], "int",
     "Count the words in sentence, where words are separated by any amount of whitespace.",
     lambda s: len(s.split()), [("one two  three",), ("   ",), ("hi",)]),
    ("unique_in_order", [("items", "list")], "list",
     "Remove consecutive duplicate elements from items, keeping the first of each run.",
     _unique_in_order, [([1, 1, 2, 2, 2, 1, 3],), (["a", "a", "b"],)]),
    ("dedupe_keep_order", [("items", "list")], "list",
     "Remove duplicate elements from items while keeping the order of their first appearance.",
     _dedupe, [([3, 1, 3, 2, 1],), (["b", "a", "b"],)]),
    ("invert_dict", [("d", "dict")], "dict",
     "Return a new dictionary with the keys and values of d swapped (values are assumed unique).",
     lambda d: {v: k for k, v in d.items()}, [({"a": 1, "b": 2},), ({},)]),
    ("merge_counts", [("a", "dict"), ("b", "dict")], "dict",
     "Merge two dictionaries of counts, adding the values of keys that appear in both.",
     _merge_sum, [({"x": 1, "y": 2}, {"y": 3, "z": 4}), ({}, {"k": 1})]),
    ("safe_divide", [("a", "float"), ("b", "float")], "float",
     "Return a divided by b, or None when b is zero.",
     lambda a, b: None if b == 0 else a / b, [(10, 4), (3, 0), (-9, 3)]),
    ("running_total", [("nums", "list")], "list",
     "Return the list of cumulative sums of nums.",
     _running_total, [([1, 2, 3, 4],), ([5, -5, 5],), ([],)]),
    ("pairwise_differences", [("nums", "list")], "list",
     "Return the differences between each element of nums and the element before it.",
     lambda nums: [b - a for a, b in zip(nums, nums[1:])], [([1, 4, 9, 16],), ([7],)]),
    ("count_char", [("s", "str"), ("ch", "str")], "int",
     "Count how many times the single character ch occurs in s.",
     lambda s, ch: s.count(ch), [("mississippi", "s"), ("hello", "z")]),
    ("longest_word", [("sentence", "str")], "str",
     "Return the longest word in sentence; if several words tie, return the first of them.",
     lambda s: max(s.split(), key=len) if s.split() else "", [("a quick brown fox",), ("hi there you",)]),
    ("average", [("nums", "list")], "float",
     "Return the arithmetic mean of nums, or 0.0 for an empty list.",
     lambda nums: sum(nums) / len(nums) if nums else 0.0, [([2, 4, 9],), ([],), ([5],)]),
    ("middle_value", [("nums", "list")], "float",
     "Return the median of a non-empty list of numbers as a float.",
     _middle, [([3, 1, 2],), ([4, 1, 3, 2],), ([10],)]),
    ("is_leap_year", [("year", "int")], "bool",
     "Return True if year is a leap year in the Gregorian calendar.",
     lambda y: y % 4 == 0 and (y % 100 != 0 or y % 400 == 0), [(2024,), (1900,), (2000,)]),
    ("gcd_of_list", [("nums", "list")], "int",
     "Return the greatest common divisor of all the positive integers in nums.",
     lambda nums: math.gcd(*nums), [([12, 18, 30],), ([7, 14],), ([9],)]),
    ("least_common_multiple", [("a", "int"), ("b", "int")], "int",
     "Return the least common multiple of two positive integers a and b.",
     lambda a, b: a * b // math.gcd(a, b), [(4, 6), (5, 7), (12, 18)]),
    ("triangular_number", [("n", "int")], "int",
     "Return the n-th triangular number, the sum 1 + 2 + ... + n.",
     lambda n: n * (n + 1) // 2, [(1,), (4,), (10,)]),
    ("factorial", [("n", "int")], "int",
     "Compute n! for a non-negative integer n without using recursion.",
     math.factorial, [(0,), (5,), (7,)]),
    ("count_primes_below", [("n", "int")], "int",
     "Count the prime numbers that are strictly smaller than n.",
     _count_primes_below, [(10,), (2,), (30,)]),
    ("is_armstrong", [("n", "int")], "bool",
     "Check whether n equals the sum of its digits each raised to the power of the number of digits.",
     lambda n: n == sum(int(d) ** len(str(n)) for d in str(n)), [(153,), (154,), (9,)]),
    ("reverse_words", [("sentence", "str")], "str",
     "Return the words of sentence in reverse order, separated by single spaces.",
     lambda s: " ".join(reversed(s.split())), [("one two three",), ("hello",)]),
    ("caesar_shift", [("text", "str"), ("k", "int")], "str",
     "Shift every lowercase letter of text forward by k places in the alphabet, wrapping around after z; "
     "other characters stay the same.",
     _caesar, [("abc", 1), ("xyz, ok", 3)]),
    ("camel_to_snake", [("name", "str")], "str",
     "Convert a CamelCase identifier to snake_case.",
     _camel_to_snake, [("HelloWorld",), ("parseHttpRequest",)]),
    ("snake_to_camel", [("name", "str")], "str",
     "Convert a snake_case identifier to camelCase.",
     _snake_to_camel, [("hello_world",), ("make_it_work",), ("single",)]),
    ("max_gap", [("nums", "list")], "int",
     "Return the largest difference between two neighbouring values of nums once it is sorted, or 0 "
     "for fewer than two values.",
     _max_gap, [([3, 9, 1, 4],), ([5],)]),
    ("sum_of_evens", [("nums", "list")], "int",
     "Return the sum of the even numbers in nums.",
     lambda nums: sum(x for x in nums if x % 2 == 0), [([1, 2, 3, 4, 6],), ([1, 3],)]),
    ("product_of_odds", [("nums", "list")], "int",
     "Return the product of the odd numbers in nums, or 1 if there are none.",
     lambda nums: math.prod(x for x in nums if x % 2), [([1, 2, 3, 5],), ([2, 4],)]),
    ("zip_to_dict", [("keys", "list"), ("values", "list")], "dict",
     "Build a dictionary from two lists of the same length, pairing keys[i] with values[i].",
     lambda keys, values: dict(zip(keys, values)), [(["a", "b"], [1, 2]), ([], [])]),
    ("group_by_length", [("words", "list")], "dict",
     "Group words by their length into a dictionary from length to the list of words of that length.",
     _group_by_length, [(["hi", "cat", "to", "dog"],), (["sun"],)]),
    ("filter_long_words", [("words", "list"), ("n", "int")], "list",
     "Return the words that are longer than n characters, in their original order.",
     lambda words, n: [w for w in words if len(w) > n], [(["tree", "a", "forest"], 3), (["ok"], 5)]),
    ("count_positive", [("nums", "list")], "int",
     "Count the numbers in nums that are strictly greater than zero.",
     lambda nums: sum(1 for x in nums if x > 0), [([-1, 0, 3, 8],), ([],)]),
    ("clamp", [("x", "float"), ("low", "float"), ("high", "float")], "float",
     "Limit x to the closed range from low to high.",
     lambda x, low, high: max(low, min(high, x)), [(5, 0, 10), (-3, 0, 10), (12, 0, 10)]),
    ("digits_to_number", [("digits", "list")], "int",
     "Combine a list of decimal digits into the integer they spell.",
     lambda digits: int("".join(map(str, digits))) if digits else 0, [([1, 2, 3],), ([0, 7],)]),
    ("number_to_digits", [("n", "int")], "list",
     "Return the list of decimal digits of the non-negative integer n.",
     lambda n: [int(d) for d in str(n)], [(4096,), (0,)]),
    ("binary_to_int", [("bits", "str")], "int",
     "Convert a string of 0s and 1s to the integer it represents in base two.",
     lambda bits: int(bits, 2), [("101",), ("1111",), ("0",)]),
    ("hamming_distance", [("a", "str"), ("b", "str")], "int",
     "Return the number of positions at which the equal-length strings a and b differ.",
     lambda a, b: sum(x != y for x, y in zip(a, b)), [("karolin", "kathrin"), ("abc", "abc")]),
    ("is_isogram", [("word", "str")], "bool",
     "Return True if no letter appears more than once in word, ignoring case.",
     lambda w: len(set(w.lower())) == len(w), [("machine",), ("Alpha",)]),
    ("first_non_repeating", [("s", "str")], "str",
     "Return the first character of s that occurs only once, or an empty string if there is none.",
     _first_non_repeating, [("swiss",), ("aabb",), ("level",)]),
    ("most_common_element", [("items", "list")], "object",
     "Return the element that appears most often in items; on a tie return the one that appears first.",
     _most_common, [([1, 3, 3, 2, 1, 3],), (["x", "y"],)]),
    ("transpose", [("matrix", "list")], "list",
     "Return the transpose of a rectangular matrix given as a list of rows.",
     lambda m: [list(r) for r in zip(*m)], [([[1, 2, 3], [4, 5, 6]],), ([[7]],)]),
    ("matrix_trace", [("matrix", "list")], "int",
     "Return the sum of the main diagonal of a square matrix.",
     lambda m: sum(m[i][i] for i in range(len(m))), [([[1, 2], [3, 4]],), ([[5]],)]),
    ("row_sums", [("matrix", "list")], "list",
     "Return a list with the sum of each row of matrix.",
     lambda m: [sum(r) for r in m], [([[1, 2], [3, 4], [5, 6]],), ([],)]),
    ("pad_left", [("s", "str"), ("width", "int"), ("fill", "str")], "str",
     "Pad s on the left with the character fill until it is at least width characters long.",
     lambda s, width, fill: s.rjust(width, fill), [("7", 3, "0"), ("abc", 2, "*")]),
    ("starts_with_any", [("s", "str"), ("prefixes", "list")], "bool",
     "Return True if s starts with at least one of the strings in prefixes.",
     lambda s, prefixes: any(s.startswith(p) for p in prefixes), [("keyboard", ["mo", "key"]), ("cat", [])]),
    ("split_evens_odds", [("nums", "list")], "tuple",
     "Return a tuple of two lists: the even numbers of nums and the odd numbers of nums, in order.",
     lambda nums: ([x for x in nums if x % 2 == 0], [x for x in nums if x % 2]), [([1, 2, 3, 4, 5],), ([],)]),
    ("interleave", [("a", "list"), ("b", "list")], "list",
     "Alternate the elements of a and b, starting with a; leftover elements go at the end.",
     _interleave, [([1, 2, 3], ["x", "y"]), ([], [4])]),
    ("remove_at", [("items", "list"), ("index", "int")], "list",
     "Return a copy of items without the element at position index.",
     lambda items, index: items[:index] + items[index + 1:], [([10, 20, 30], 1), (["a"], 0)]),
    ("insert_sorted", [("items", "list"), ("x", "int")], "list",
     "Insert x into the ascending list items so that the result stays sorted.",
     _insert_sorted, [([1, 3, 5], 4), ([], 2), ([2, 2], 2)]),
    ("binary_search", [("items", "list"), ("target", "int")], "int",
     "Return the index of target in the ascending list items using binary search, or -1 if it is absent.",
     _binary_search, [([1, 3, 5, 7, 9], 7), ([2, 4], 3)]),
    ("is_sorted_descending", [("nums", "list")], "bool",
     "Return True if every element of nums is greater than or equal to the next one.",
     lambda nums: all(a >= b for a, b in zip(nums, nums[1:])), [([9, 5, 5, 1],), ([3, 4],), ([],)]),
    ("count_occurrences", [("items", "list"), ("x", "object")], "int",
     "Count how many elements of items are equal to x.",
     lambda items, x: items.count(x), [([1, 2, 1, 1], 1), (["a", "b"], "c")]),
    ("acronym", [("phrase", "str")], "str",
     "Build an upper-case acronym from the first letter of each word in phrase.",
     lambda p: "".join(w[0].upper() for w in p.split()), [("portable network graphics",), ("as soon as possible",)]),
    ("mask_card", [("number", "str")], "str",
     "Hide all but the last four characters of the card number string with '*'.",
     _mask_card, [("1234567812345678",), ("98765",)]),
    ("digital_root", [("n", "int")], "int",
     "Sum the digits of the non-negative integer n again and again until a single digit remains.",
     _digital_root, [(9875,), (5,), (38,)]),
    ("collatz_steps", [("n", "int")], "int",
     "Count the steps the Collatz process (halve even numbers, map odd n to 3n + 1) needs to reach 1.",
     _collatz_steps, [(1,), (6,), (7,)]),
    ("fizzbuzz", [("n", "int")], "list",
     "Return the FizzBuzz strings for the numbers 1 to n.",
     _fizzbuzz, [(5,), (15,)]),
    ("is_power_of_two", [("n", "int")], "bool",
     "Return True if the integer n is a positive power of two.",
     lambda n: n > 0 and n & (n - 1) == 0, [(1,), (48,), (64,)]),
    ("alternate_case", [("s", "str")], "str",
     "Return s with characters at even positions in upper case and at odd positions in lower case.",
     lambda s: "".join(c.upper() if i % 2 == 0 else c.lower() for i, c in enumerate(s)), [("python",), ("ABCD",)]),
    ("char_positions", [("s", "str"), ("ch", "str")], "list",
     "Return the list of indexes at which the character ch appears in s.",
     _char_positions, [("banana", "a"), ("tree", "x")]),
    ("min_and_max", [("nums", "list")], "tuple",
     "Return a tuple with the smallest and the largest value of a non-empty list of numbers.",
     lambda nums: (min(nums), max(nums)), [([4, -2, 9, 0],), ([3],)]),
    ("range_sum", [("a", "int"), ("b", "int")], "int",
     "Return the sum of all integers from a to b inclusive (a <= b).",
     lambda a, b: sum(range(a, b + 1)), [(1, 10), (5, 5), (-2, 2)]),
    ("count_digit_chars", [("s", "str")], "int",
     "Count the characters of s that are decimal digits.",
     lambda s: sum(c.isdigit() for c in s), [("a1b22c333",), ("none",)]),
    ("strip_punctuation", [("text", "str")], "str",
     "Remove every punctuation character (as in string.punctuation) from text.",
     lambda t: "".join(c for c in t if c not in string.punctuation), [("Hi, there! Ok?",), ("no-op",)]),
    ("is_valid_identifier", [("name", "str")], "bool",
     "Check whether name could be used as a Python variable name (ignoring keywords).",
     lambda name: name.isidentifier(), [("my_var",), ("2fast",), ("_ok",)]),
    ("minutes_to_clock", [("minutes", "int")], "str",
     "Format a number of minutes as hours and minutes in the form 'H:MM'.",
     _minutes_to_hours, [(135,), (59,), (600,)]),
    ("format_price", [("cents", "int")], "str",
     "Format an amount of money given in cents as a dollar string with two decimals, like '$3.07'.",
     lambda c: f"${c // 100}.{c % 100:02d}", [(307,), (5,), (12000,)]),
    ("parse_key_values", [("text", "str")], "dict",
     "Parse a string such as 'a=1;b=2' into a dictionary of string keys and string values.",
     _parse_kv, [("a=1;b=2",), ("name=ann;",)]),
    ("sum_nested", [("data", "list")], "int",
     "Return the sum of all numbers in a list that may contain nested lists at any depth.",
     _sum_nested, [([1, [2, 3], [[4]]],), ([],)]),
    ("nesting_depth", [("data", "list")], "int",
     "Return how deeply lists are nested inside data; a flat list has depth 1.",
     _depth, [([1, 2],), ([1, [2, [3]]],), ([],)]),
    ("all_pairs", [("items", "list")], "list",
     "Return every pair (items[i], items[j]) with i < j as a list of tuples.",
     lambda items: [(items[i], items[j]) for i in range(len(items)) for j in range(i + 1, len(items))],
     [([1, 2, 3],), (["a"],)]),
    ("shared_items", [("a", "list"), ("b", "list")], "list",
     "Return the sorted list of distinct values that occur in both a and b.",
     lambda a, b: sorted(set(a) & set(b)), [([5, 1, 3, 3], [3, 5, 7]), ([1], [2])]),
    ("word_lengths", [("sentence", "str")], "list",
     "Return the lengths of the words of sentence in order.",
     lambda s: [len(w) for w in s.split()], [("I like green tea",), ("",)]),
    ("percent_change", [("old", "float"), ("new", "float")], "float",
     "Return the percentage change from old to new, rounded to two decimals.",
     lambda old, new: round((new - old) / old * 100, 2), [(50, 75), (80, 60), (3, 4)]),
    ("temperature_label", [("celsius", "float")], "str",
     "Describe a temperature as 'cold' below 10 degrees, 'mild' below 25 degrees and 'hot' otherwise.",
     _temperature_label, [(3,), (18.5,), (30,)]),
    ("distance_2d", [("p", "tuple"), ("q", "tuple")], "float",
     "Return the Euclidean distance between the points p and q, rounded to three decimals.",
     lambda p, q: round(math.dist(p, q), 3), [((0, 0), (3, 4)), ((1, 1), (2, 3))]),
    ("circle_area", [("radius", "float")], "float",
     "Return the area of a circle with the given radius, rounded to two decimals.",
     lambda r: round(math.pi * r * r, 2), [(1,), (2.5,)]),
    ("words_without_vowels", [("words", "list")], "list",
     "Keep only the words that contain no vowel letters.",
     _vowel_free_words, [(["rhythm", "apple", "myth"],), (["sky", "Tea"],)]),
    ("sum_of_squares_to", [("n", "int")], "int",
     "Return 1*1 + 2*2 + ... + n*n for a non-negative integer n.",
     lambda n: sum(i * i for i in range(1, n + 1)), [(3,), (0,), (10,)]),
    ("count_long_runs", [("s", "str"), ("k", "int")], "int",
     "Count the maximal runs of one repeated character in s whose length is at least k.",
     lambda s, k: sum(1 for _, g in __import__("itertools").groupby(s) if len(list(g)) >= k),
     [("aaabbcdddd", 3), ("abc", 2)]),
]

_ES_ENDINGS = ("s", "sh", "ch", "x", "z")


def _third_person(desc: str) -> str:
    """'Return the ...' -> 'returns the ...' (for 'a function that ...' sentences)."""
    first, _, rest = desc.partition(" ")
    verb = first.lower()
    verb = verb + "es" if verb.endswith(_ES_ENDINGS) else verb + "s"
    return f"{verb} {rest}".rstrip(".")


def _call(name, args) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"


def _code_prompts(rng: random.Random) -> list[str]:
    out = []
    for name, params, ret, desc, impl, examples in CODE_TASKS:
        shown = [(_call(name, ex), repr(impl(*ex))) for ex in examples]
        plain_args = ", ".join(p for p, _ in params)
        typed_args = ", ".join(f"{p}: {t}" for p, t in params)
        doctest = "".join(f"    >>> {c}\n    {r}\n" for c, r in shown)
        # (1) typed stub, description on the docstring's first line
        out.append(f"Complete the code I provided.\n\ndef {name}({typed_args}) -> {ret}:\n"
                   f"    \"\"\"{desc}\n{doctest}    \"\"\"\n")
        # (2) untyped stub, description on its own line
        out.append(f"Complete the code I provided.\ndef {name}({plain_args}):\n"
                   f"    \"\"\"\n    {desc}\n\n    Examples:\n{doctest}    \"\"\"\n")
        third = _third_person(desc)
        c0, r0 = shown[0]
        writes = [
            f"Write a Python function `{name}({plain_args})` that {third}.",
            f"Write a Python function that {third}. Name it {name}.",
            f"Write a Python function `{name}` that {third}. For example, {c0} should return {r0}.",
            f"Implement {name}({typed_args}) in Python. It {third}. Include a short docstring.",
            f"Write a Python function that {third}, and show how to call it with an example.",
        ]
        out.extend(writes)
    rng.shuffle(out)
    return out


# ----------------------------------------------------------------------------------------------------------------
# math family
# ----------------------------------------------------------------------------------------------------------------

NAMES = ["Maya", "Liam", "Priya", "Tomas", "Aisha", "Ben", "Chloe", "Diego", "Elena", "Farid", "Grace", "Hiro",
         "Ines", "Jonah", "Kira", "Leo", "Mina", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sam", "Tara", "Umar",
         "Vera", "Wes", "Yuki", "Zane", "Amara", "Bruno", "Celia", "Dev", "Esme", "Felix", "Hana", "Ivan", "Jade",
         "Kofi", "Lena", "Marco", "Nadia", "Oscar", "Petra", "Ravi", "Sofia", "Theo", "Uma", "Victor", "Wren"]
SMALL_ITEMS = ["pencils", "stickers", "marbles", "crayons", "buttons", "cookies", "apples", "stamps", "beads",
               "cards", "seashells", "candies", "erasers", "balloons", "muffins"]
CONTAINERS = ["packs", "boxes", "bags", "jars", "trays", "crates", "bundles"]
SHOP_ITEMS = [("notebook", "notebooks"), ("sandwich", "sandwiches"), ("book", "books"), ("plant", "plants"),
              ("toy car", "toy cars"), ("mug", "mugs"), ("ticket", "tickets"), ("scarf", "scarves"),
              ("puzzle", "puzzles"), ("lamp", "lamps")]
PLACES = ["the library", "the park", "the beach", "the museum", "the farm", "the lake", "the zoo", "school"]
VEHICLES = ["car", "bus", "train", "bike", "boat"]


def _m_pack_give(r, a):
    n, p = a(2, 9), a(6, 24)
    k = r.randint(1, n * p - 1)
    return (f"{r.choice(NAMES)} buys {n} {r.choice(CONTAINERS)} of {p} {r.choice(SMALL_ITEMS)} and gives away {k} "
            f"of them. How many are left?")


def _m_shop_change(r, a):
    name, (_, pl) = r.choice(NAMES), r.choice(SHOP_ITEMS)
    n, price = a(2, 8), a(2, 15)
    paid = (n * price // 10 + 1) * 10 + r.choice([0, 10, 20])
    return f"{name} buys {n} {pl} that cost ${price} each and pays with ${paid}. How much change does {name} get?"


def _m_speed(r, a):
    v, h = r.choice(VEHICLES), a(2, 7)
    sp = r.choice([30, 40, 45, 50, 60, 72, 80, 90])
    return f"A {v} travels at {sp} miles per hour for {h} hours. How many miles does it travel?"


def _m_weekly_saving(r, a):
    name, w = r.choice(NAMES), a(5, 25)
    weeks = a(4, 20)
    start = a(0, 60)
    return (f"{name} has ${start} saved and puts away ${w} every week. How much money will {name} have after "
            f"{weeks} weeks?")


def _m_goal_weeks(r, a):
    name, w = r.choice(NAMES), a(5, 20)
    k = a(3, 15)
    price = w * k + r.choice([0, 0, a(1, w - 1)])
    item = r.choice(["a bike", "a guitar", "a video game", "a pair of skates", "a telescope", "a tent"])
    return (f"{name} wants to buy {item} that costs ${price}. If {name} saves ${w} each week, how many weeks will "
            f"it take to have enough money?")


def _m_share_equally(r, a):
    name, kids, each = r.choice(NAMES), a(3, 9), a(3, 12)
    extra = a(0, kids - 1)
    it = r.choice(SMALL_ITEMS)
    return (f"{name} has {kids * each + extra} {it} and shares them equally among {kids} friends, keeping any "
            f"that are left over. How many {it} does each friend get, and how many does {name} keep?")


def _m_ages(r, a):
    n1, n2 = r.sample(NAMES, 2)
    age, diff, yrs = a(5, 15), a(2, 30), a(2, 12)
    return f"{n1} is {age} years old. {n2} is {diff} years older than {n1}. How old will {n2} be in {yrs} years?"


def _m_twice_age(r, a):
    n1, n2 = r.sample(NAMES, 2)
    age = a(3, 20)
    return f"{n1} is {age} years old and {n2} is three times as old. What is the sum of their ages?"


def _m_rectangle(r, a):
    l, w = a(4, 30), a(3, 20)
    thing = r.choice(["garden", "room", "playground", "swimming pool", "field", "patio"])
    q = r.choice(["area", "perimeter"])
    unit = "square meters" if q == "area" else "meters"
    return f"A rectangular {thing} is {l} meters long and {w} meters wide. What is its {q} in {unit}?"


def _m_fence(r, a):
    s, cost = a(5, 40), a(3, 12)
    return (f"A square yard has sides of {s} feet. Fencing costs ${cost} per foot. How much does it cost to put a "
            f"fence around the whole yard?")


def _m_percent_discount(r, a):
    s, pl = r.choice(SHOP_ITEMS)
    price = r.choice([20, 40, 50, 60, 80, 120, 150, 200])
    pct = r.choice([10, 15, 20, 25, 30, 40, 50])
    return f"A {s} costs ${price}. It is on sale for {pct}% off. What is the sale price?"


def _m_tip(r, a):
    name, bill, pct = r.choice(NAMES), r.choice([20, 36, 40, 48, 60, 75, 80, 120]), r.choice([10, 15, 20, 25])
    return f"{name}'s dinner bill is ${bill}. {name} leaves a {pct}% tip. How much does {name} pay in total?"


def _m_hours_wage(r, a):
    name, wage, h, days = r.choice(NAMES), a(9, 25), a(3, 8), a(2, 6)
    return (f"{name} earns ${wage} per hour and works {h} hours a day for {days} days. How much does {name} "
            f"earn in total?")


def _m_pages(r, a):
    name, per_day, days = r.choice(NAMES), a(8, 40), a(2, 9)
    total = per_day * days + a(10, 200)
    return (f"{name} is reading a book with {total} pages. {name} reads {per_day} pages a day for {days} days. "
            f"How many pages are left to read?")


def _m_fraction_left(r, a):
    name, it = r.choice(NAMES), r.choice(SMALL_ITEMS)
    d = r.choice([2, 3, 4, 5])
    n = d * a(4, 15)
    frac = {2: "half", 3: "a third", 4: "a quarter", 5: "a fifth"}[d]
    k = a(1, n - n // d - 1)
    return (f"{name} had {n} {it}. {name} gave {frac} of them to a sister and then lost {k} more. How many {it} "
            f"does {name} have now?")


def _m_legs(r, a):
    c, d = a(2, 20), a(2, 20)
    farm = r.choice(["chickens and cows", "ducks and goats", "geese and sheep"])
    two, four = farm.split(" and ")
    return f"A farm has {c} {two} and {d} {four}. How many legs do the animals have altogether?"


def _m_buses(r, a):
    per, kids = r.choice([20, 25, 30, 40, 45]), a(60, 400)
    return (f"A school trip to {r.choice(PLACES)} has {kids} students. Each bus holds {per} students. What is the "
            f"smallest number of buses needed?")


def _m_recipe(r, a):
    cups, serv = a(2, 6), r.choice([4, 6, 8])
    want = serv * r.choice([2, 3]) // r.choice([1, 2])
    ing = r.choice(["flour", "milk", "sugar", "rice", "oats"])
    return f"A recipe uses {cups} cups of {ing} to make {serv} servings. How many cups are needed for {want} servings?"


def _m_time(r, a):
    name = r.choice(NAMES)
    h, m = a(7, 11), r.choice([0, 15, 20, 30, 45])
    dur = a(35, 200)
    return (f"{name} starts a hike at {h}:{m:02d} in the morning and walks for {dur} minutes. At what time does "
            f"{name} finish?")


def _m_consecutive_days(r, a):
    name, first, inc, days = r.choice(NAMES), a(2, 10), a(1, 5), a(3, 7)
    act = r.choice(["push-ups", "laps", "pages", "flashcards", "sketches"])
    return (f"{name} does {first} {act} on the first day and {inc} more each day than the day before. How many "
            f"{act} does {name} do in {days} days altogether?")


def _m_two_prices(r, a):
    name = r.choice(NAMES)
    (s1, p1), (s2, p2) = r.sample(SHOP_ITEMS, 2)
    n1, n2, c1, c2 = a(2, 6), a(2, 6), a(2, 12), a(3, 20)
    return f"{name} buys {n1} {p1} at ${c1} each and {n2} {p2} at ${c2} each. How much does {name} spend?"


def _m_remaining_money(r, a):
    name, start = r.choice(NAMES), a(40, 200)
    x = a(5, start // 3)
    y = a(5, start // 3)
    return (f"{name} has ${start}. {name} spends ${x} on lunch and ${y} on a gift, then earns ${a(5, 30)} "
            f"walking a neighbor's dog. How much money does {name} have now?")


def _m_average(r, a):
    name = r.choice(NAMES)
    scores = [a(60, 100) for _ in range(r.choice([3, 4, 5]))]
    return f"{name}'s test scores are {', '.join(map(str, scores[:-1]))} and {scores[-1]}. What is the average score?"


def _m_ratio(r, a):
    n1, n2 = r.sample(NAMES, 2)
    p, q = r.choice([(1, 2), (2, 3), (3, 4), (3, 5), (2, 5), (4, 5)])
    k = a(3, 20)
    it = r.choice(SMALL_ITEMS)
    return (f"{n1} and {n2} share {k * (p + q)} {it} in the ratio {p}:{q}. How many {it} does {n2} get?")


def _m_tank(r, a):
    cap, rate = r.choice([120, 200, 240, 300, 360, 480, 600]), r.choice([4, 5, 6, 8, 10, 12, 15, 20])
    return f"A tank holds {cap} liters of water. A pipe fills it at {rate} liters per minute. How long does it take " \
           f"to fill the empty tank?"


def _m_linear_eq(r, a):
    x, m, b = a(-9, 12), a(2, 9), a(-20, 30)
    c = m * x + b
    sign = "+" if b >= 0 else "-"
    return f"Solve for $x$: ${m}x {sign} {abs(b)} = {c}$."


def _m_evaluate(r, a):
    p, q, s = a(2, 6), a(-5, 9), a(-4, 6)
    sign = "+" if q >= 0 else "-"
    return f"If $f(x) = {p}x^2 {sign} {abs(q)}x + 1$, what is $f({s})$?"


def _m_gcd_lcm(r, a):
    m, n = a(6, 60), a(6, 60)
    q = r.choice(["greatest common divisor", "least common multiple"])
    return f"What is the {q} of {m} and {n}?"


def _m_sum_series(r, a):
    s, d, k = a(1, 10), a(2, 7), a(5, 20)
    return (f"What is the sum of the first {k} terms of the arithmetic sequence {s}, {s + d}, {s + 2 * d}, "
            f"{s + 3 * d}, ...?")


def _m_probability(r, a):
    red, blue, green = a(2, 9), a(2, 9), a(1, 6)
    c = r.choice(["red", "blue", "green"])
    return (f"A bag contains {red} red marbles, {blue} blue marbles and {green} green marbles. One marble is drawn "
            f"at random. What is the probability that it is {c}? Express your answer as a common fraction.")


def _m_unit_convert(r, a):
    km, name = a(2, 30), r.choice(NAMES)
    return (f"{name} runs {km} kilometers every day. How many meters does {name} run in a week?")


def _m_temperature(r, a):
    t0, drop, hours = a(5, 30), a(1, 4), a(2, 8)
    return (f"The temperature at noon is {t0} degrees. It falls by {drop} degrees every hour. What is the "
            f"temperature {hours} hours later?")


MATH_TEMPLATES = [
    _m_pack_give, _m_shop_change, _m_speed, _m_weekly_saving, _m_goal_weeks, _m_share_equally, _m_ages,
    _m_twice_age, _m_rectangle, _m_fence, _m_percent_discount, _m_tip, _m_hours_wage, _m_pages, _m_fraction_left,
    _m_legs, _m_buses, _m_recipe, _m_time, _m_consecutive_days, _m_two_prices, _m_remaining_money, _m_average,
    _m_ratio, _m_tank, _m_linear_eq, _m_evaluate, _m_gcd_lcm, _m_sum_series, _m_probability, _m_unit_convert,
    _m_temperature,
]

MATH_SUFFIXES = ["", "", "", " Explain your reasoning step by step.", " Show your work."]


def _math_prompts(rng: random.Random, k: int) -> list[str]:
    out, seen, tries = [], set(), 0
    a = rng.randint
    while len(out) < k and tries < 50 * k + 1000:
        tries += 1
        tpl = MATH_TEMPLATES[len(out) % len(MATH_TEMPLATES)]
        p = tpl(rng, a) + rng.choice(MATH_SUFFIXES)
        if p not in seen:
            seen.add(p)
            out.append(p)
    rng.shuffle(out)
    return out


# ----------------------------------------------------------------------------------------------------------------
# general family
# ----------------------------------------------------------------------------------------------------------------

CONCEPTS = [
    "photosynthesis", "the water cycle", "gravity", "inflation", "compound interest", "the immune system",
    "plate tectonics", "black holes", "the greenhouse effect", "supply and demand", "how vaccines work",
    "machine learning", "the internet", "blockchain", "DNA", "evolution by natural selection", "the seasons",
    "the phases of the moon", "electric circuits", "recycling", "the French Revolution", "the Roman Empire",
    "democracy", "the stock market", "renewable energy", "how airplanes fly", "sleep", "the human heart",
    "volcanoes", "rainbows", "antibiotics", "the scientific method", "encryption", "cloud computing",
    "the printing press", "tides", "the food chain", "solar panels", "earthquakes", "habits",
    "the Pythagorean theorem", "prime numbers", "probability", "a budget", "credit scores", "bees and pollination",
    "coral reefs", "the Industrial Revolution", "operating systems", "version control with git",
]
CONCEPT_TEMPLATES = [
    "Explain {} in simple terms.",
    "Describe {} in two or three sentences.",
    "Give three interesting facts about {}.",
    "Explain {} to a ten-year-old.",
    "Summarize the key ideas behind {} as a short bulleted list.",
    "Why is it worth understanding {}? Keep it brief.",
]
ACTIVITIES = [
    "learning a new language", "starting a vegetable garden", "training for a first 5K run", "saving money",
    "studying for exams", "cooking healthy meals on a budget", "learning to play the guitar", "writing a resume",
    "preparing for a job interview", "keeping a houseplant alive", "getting better sleep", "public speaking",
    "learning to program", "traveling on a tight budget", "organizing a small closet", "making new friends in a new city",
    "taking better photos with a phone", "reducing screen time", "starting a daily journal", "caring for a new puppy",
    "baking bread at home", "managing stress", "working from home", "reading more books", "learning to draw",
    "planning a birthday party", "riding a bike in the city", "cutting down on food waste", "learning to swim",
    "negotiating a salary", "staying focused while studying", "hiking safely", "writing a short story",
    "decluttering a home", "teaching a child to read",
]
ACTIVITY_TEMPLATES = [
    "Give me some practical tips for {}.",
    "What are common mistakes people make when {}?",
    "Write a short step-by-step beginner's guide to {}.",
    "I want to get better at {}. Where should I start?",
    "List five things to keep in mind when {}.",
]
WRITING_SUBJECTS = [
    "a rainy morning in the city", "an old lighthouse", "the first snow of winter", "a cat watching birds",
    "a busy train station", "the smell of fresh bread", "a lost umbrella", "the ocean at night", "a small robot",
    "autumn leaves", "a forgotten library book", "a summer thunderstorm", "a friendly dragon", "the last day of school",
    "a mountain sunrise", "a garden in spring", "a cup of coffee", "a journey to Mars", "a grandmother's kitchen",
    "a paper boat", "the city at midnight", "a lonely tree on a hill", "a street musician", "a snowy forest",
    "a child's first bicycle", "a desert at noon", "a message in a bottle", "a lighthouse keeper", "fireflies",
    "a quiet Sunday afternoon",
]
WRITING_TEMPLATES = [
    "Write a short poem about {}.",
    "Write a haiku about {}.",
    "Write a two-sentence story about {}.",
    "Write the opening paragraph of a story about {}.",
    "Write a vivid descriptive paragraph about {}.",
]
MISC_PROMPTS = [
    "What is the difference between weather and climate?",
    "What is the difference between a virus and a bacterium?",
    "Compare cats and dogs as pets in a short table.",
    "Write a polite email to a teacher asking for an extension on an assignment.",
    "Write a short thank-you note to a neighbor who watered my plants.",
    "Rewrite this sentence to sound more formal: 'Hey, can you send me that report real quick?'",
    "Rewrite this sentence in plain English: 'The utilization of resources was optimized.'",
    "Give me five ideas for a rainy weekend with kids.",
    "Suggest a simple three-day meal plan for a vegetarian.",
    "What should I pack for a weekend camping trip?",
    "List ten common English idioms and their meanings.",
    "Suggest five names for a small coffee shop.",
    "Write a short product description for a reusable water bottle.",
    "Write a tweet announcing the opening of a new bakery.",
    "Give me a fun fact about octopuses.",
    "Why is the sky blue?",
    "Why do leaves change color in the fall?",
    "How do I make a good first impression?",
    "What are the pros and cons of electric cars?",
    "What are the benefits of regular exercise?",
    "Explain the rules of chess briefly.",
    "How does a refrigerator keep food cold?",
    "What is the difference between a list and a tuple in Python?",
    "Explain what a for loop does in programming, with a small example.",
    "What is recursion? Give a simple example in Python.",
    "Explain the difference between HTTP and HTTPS.",
    "What is an API? Explain with an everyday analogy.",
    "Summarize the plot of a classic fairy tale of your choice in three sentences.",
    "Give me a motivational quote and explain what it means.",
    "Write a short dialogue between a customer and a waiter.",
    "Write a limerick about a forgetful cat.",
    "Translate 'Good morning, how are you?' into Spanish and French.",
    "Classify these animals as mammals, birds or reptiles: eagle, lizard, whale, penguin, snake.",
    "Put these numbers in order from smallest to largest: 42, 7, 19, 3, 88, 56.",
    "What are three ways to reduce plastic use at home?",
    "How can I improve my handwriting?",
    "Plan a one-day itinerary for a visit to a big city museum.",
    "What questions should I ask when buying a used car?",
    "Give me a simple explanation of how a bill becomes a law.",
    "What are good habits for keeping a computer secure?",
    "Write a short speech to welcome new members to a book club.",
    "Describe the taste of a lemon to someone who has never had one.",
    "What is a healthy breakfast that takes less than five minutes to make?",
    "Explain the difference between 'affect' and 'effect'.",
    "Give me a riddle and its answer.",
]


def _general_prompts(rng: random.Random) -> list[str]:
    out = [t.format(c) for c in CONCEPTS for t in CONCEPT_TEMPLATES]
    out += [t.format(c) for c in ACTIVITIES for t in ACTIVITY_TEMPLATES]
    out += [t.format(c) for c in WRITING_SUBJECTS for t in WRITING_TEMPLATES]
    out += MISC_PROMPTS
    rng.shuffle(out)
    return out


# ----------------------------------------------------------------------------------------------------------------


def _take(pool: list[str], k: int, seen: set[str]) -> list[str]:
    out = []
    for p in pool:
        if len(out) == k:
            break
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def prompts(n: int, seed: int = 0) -> list[str]:
    """n distinct prompts, about a third each of code, math and general instructions, deterministically shuffled."""
    if n < 0:
        raise ValueError("n must be non-negative")
    rng = random.Random(seed)
    code = _code_prompts(random.Random(rng.random()))
    general = _general_prompts(random.Random(rng.random()))
    math_rng = random.Random(rng.random())
    k_code = min(len(code), n // 3)
    k_general = min(len(general), n // 3)
    seen: set[str] = set()
    out = _take(code, k_code, seen) + _take(general, k_general, seen)
    out += _take(_math_prompts(math_rng, n - len(out)), n - len(out), seen)
    if len(out) < n:  # very large n: top up from whatever is left of the fixed pools, then more math
        out += _take(code + general, n - len(out), seen)
        extra = random.Random(seed + 1)
        while len(out) < n:
            before = len(out)
            out += _take(_math_prompts(extra, n - len(out)), n - len(out), seen)
            if len(out) == before:
                raise ValueError(f"cannot make {n} distinct prompts")
    rng.shuffle(out)
    return out


if __name__ == "__main__":
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    ps = prompts(n)
    print(f"{len(ps)} prompts, {len(set(ps))} distinct")
    for p in ps[:8]:
        print("-" * 60)
        print(p)
