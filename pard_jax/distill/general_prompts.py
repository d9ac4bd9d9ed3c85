"""The general family of distillation prompts: explanations, advice, lists and short writing from topic lists
x instruction templates."""

from __future__ import annotations

import random

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


def general_prompts(rng: random.Random) -> list[str]:
    """Every general prompt (topics x templates, and fixed ones), shuffled by `rng`."""
    out = [t.format(c) for c in CONCEPTS for t in CONCEPT_TEMPLATES]
    out += [t.format(c) for c in ACTIVITIES for t in ACTIVITY_TEMPLATES]
    out += [t.format(c) for c in WRITING_SUBJECTS for t in WRITING_TEMPLATES]
    out += MISC_PROMPTS
    rng.shuffle(out)
    return out
