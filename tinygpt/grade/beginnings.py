"""Story beginnings a model is graded on: the built-in set, written for this project, and beginnings
from a file. Each built-in beginning sets up its characters (names, pronouns), a place and often
a line of dialogue, and stops in the middle of a sentence, so a good continuation has to finish
that sentence and keep the same characters."""

from __future__ import annotations

import json
from pathlib import Path

BUILT_IN = (
    "Once upon a time, there was a little girl named Lily. She loved to play in the park with her red ball. One day, she",
    "Tom and his dog Spot went to the beach. Tom wanted to build a big sand castle, but Spot",
    "Mia had a small box under her bed. Every night she opened it and looked at the shiny stone inside. \"What are you?\" she",
    "Ben was a brave boy who lived near a dark forest. His mom told him, \"Never go into the forest alone.\" But one morning, Ben",
    "There was a tiny bird named Pip who could not fly. Pip sat on a branch and watched the other birds. He felt",
    "Sue and her brother Max were baking a cake for their mom. Max poured the flour, and Sue",
    "One day, a big bear came to the village. All the people were scared. Only a little girl named Anna",
    "Jack found a map in his grandpa's old chest. The map showed a red X near the river. Jack ran to his friend Sam and said,",
    "Lucy liked to sing every morning. Her voice was soft and sweet. One day, a sad cat sat by her window and",
    "Once upon a time, in a small house by the sea, lived an old man and his cat Kiki. Every day the old man",
    "Emma wanted to be the fastest runner in her class. She practiced every day after school, but her friend Zoe",
    "The sun was hot, and Tim was thirsty. He saw a lemonade stand on the corner. A girl named Kate",
    "Max the puppy loved his blue ball. One day, the ball rolled under the fence into the neighbor's yard. Max",
    "Sara and Leo were playing hide and seek in the garden. Leo hid behind a big tree, and Sara",
    "It was raining outside, and Molly was bored. She looked at her toys and sighed. Then her dad said,",
    "Joe had a red kite. He took it to the hill on a windy day. The kite flew higher and higher until",
    "Once upon a time, there was a shy frog named Hoppy. He lived in a pond with many other frogs. The other frogs",
    "Ella lost her favorite doll at the store. She cried and cried. Her mom held her hand and said,",
    "Sam wanted to help his grandma in the garden. Grandma gave him a little shovel and said, \"Dig a hole here, and",
    "A little mouse named Mimi lived in a hole in the wall. Every night she came out to look for cheese. One night, she",
    "Lily and her mom went to the zoo. They saw lions, monkeys and a tall giraffe. Lily pointed at the giraffe and",
    "Tim had a new bike. It was shiny and green. He wanted to ride it to the park, but his mom said,",
    "There once was a king who had everything, but he was not happy. One day, a poor boy named Leo",
    "Anna found a little kitten in the snow. The kitten was cold and hungry. Anna picked it up and",
    "Ben and Emma were best friends. They did everything together. But one day, Ben said something mean, and Emma",
    "Once upon a time, a little star lived high in the sky. The star wanted to see the world below, so",
    "Zoe loved to paint. She painted the sky, the trees and her cat Coco. One day, she ran out of blue paint, so",
    "Jack climbed the big tree in his yard. From the top he could see the whole town. Suddenly, he heard",
    "Mom made soup for dinner, but Tom did not want to eat it. \"I don't like soup,\" he said. Mom smiled and",
    "A brown dog named Rex lived on a farm. He liked to chase the chickens, but the farmer",
    "Lucy and Tim went to the lake to catch fish. Tim threw his line into the water and waited. After a long time,",
    "Sue had a big, red balloon. She held the string very tight. But then a strong wind came and",
    "Once upon a time, there was a little car named Zippy. Zippy was the smallest car in the town, and the big trucks",
    "Max was scared of the dark. Every night he asked his dad to leave the light on. One night, the light went out and Max",
    "Mia and her grandpa planted a seed in a pot. Every day Mia gave it water. After many days,",
    "The toys in Sam's room could talk when nobody was there. One night, the teddy bear said to the robot,",
    "Emma wanted a cookie from the jar on the high shelf. She pulled a chair to the shelf and",
    "A little fish named Nemo swam far away from his home. The sea was big and dark. Nemo",
    "Lily was sad because it was her first day at a new school. She did not know anyone. Then a girl with red hair",
    "Ben liked to build towers with his blocks. He built the tallest tower ever. Then his little sister Amy",
    "One sunny morning, Tom and his friend Lucy found a big puddle. Tom jumped in it, and the water",
    "There was a wise old owl who lived in a tall tree. All the animals came to him for help. One day, a little rabbit",
    "Sara wanted to give her mom a present, but she had no money. She thought and thought. Then she",
    "Joe and his dad went camping in the woods. At night they sat by the fire, and Dad told a story about",
    "A girl named Kim had a pet turtle named Speedy. Speedy was very slow, but Kim",
    "Once upon a time, a princess lived in a big castle. She had many toys, but she was lonely. One day she",
    "Tim saw an old man sitting alone on a bench. The man looked sad. Tim walked over to him and",
    "Anna and her dog Buster were walking home when they heard a loud noise. Buster barked, and Anna",
    "The little train went up the hill. It was a very big hill. The train said, \"I can do it!\" and",
    "Molly found a shiny key in the sand. She wondered what it could open. She looked around and",
    "Leo wanted to be a pilot when he grew up. He made a plane out of a big box. He sat inside it and",
    "Ella's grandma was sick, so Ella made her a card. She drew a big sun and a flower on it. Then she",
    "Sam and Sue found a lost puppy in the park. The puppy had a collar with a name on it. The name was",
    "There was a little cloud that was always gray. The other clouds were white and fluffy. The little cloud",
    "Jack and Jill went up the hill to get water. At the top, they found a strange door in the rock. Jill",
    "Lucy's mom gave her a basket and said, \"Please bring these apples to Mrs. Brown.\" On the way, Lucy",
    "Once upon a time, there was a lazy cat named Tom. He slept all day in the sun. One day, a mouse",
    "Mia loved the color pink. She wore pink shoes, a pink dress and a pink hat. One day, her friend Ben asked,",
    "Max and his mom went to the market. Max saw a big box of sweets and asked, \"Can I have one?\" Mom",
    "Kate had a small garden with red and yellow flowers. Every day she watered them. But one morning, the flowers",
)


def load_beginnings(path) -> list[str]:
    """Beginnings from a file: .txt (one per line, blank lines skipped) or .jsonl (a string, or an
    object with a "beginning" or "prompt" field, per line)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        out = [_jsonl_beginning(line, path, i) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    else:
        out = [line.strip() for line in text.splitlines() if line.strip()]
    if not out:
        raise ValueError(f"{path}: no beginnings in it (one per line, or .jsonl with a \"beginning\" field)")
    return out


def _jsonl_beginning(line: str, path: Path, number: int) -> str:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{number}: not JSON ({e.msg})") from None
    if isinstance(item, dict):
        item = item.get("beginning", item.get("prompt"))
    if not isinstance(item, str) or not item.strip():
        raise ValueError(f"{path}:{number}: expected a string or an object with a \"beginning\" string")
    return item.strip()
