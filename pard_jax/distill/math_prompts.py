"""The math family of distillation prompts: grade-school word problems and simple algebra from ~30 templates
with random names, items and numbers."""

from __future__ import annotations

import random

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


def math_prompts(rng: random.Random, k: int) -> list[str]:
    """Up to k distinct word problems, cycling through the templates, shuffled by `rng`."""
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
