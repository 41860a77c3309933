"""A procedural generator of short children's stories, for training with no download.

Each story comes from a random plan, as the TinyStories corpus did: one verb, one noun and one
adjective from the built-in child vocabulary (`tinygpt.story_words`), plus a random subset of
story features. The plan's words fill the roles their kind fits (an animal noun becomes a
character, a place noun the setting, a feeling adjective the hero's mood, ...), and every role
appears in every story, so the plan's words are always used. Sentences are drawn from many
shapes per story part; narration stays in the past tense, speech in the present.

Stories are deterministic: story `i` of seed `s` is the same whatever the count asked for.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import Iterator

from tinygpt.data import story_words as W

FEATURES = ("dialogue", "bad ending", "moral value", "plot twist", "foreshadowing", "conflict")

MIN_WORDS, MAX_WORDS = 80, 300

OBJECT_KINDS = ("toy", "food", "thing", "nature")


def _by_kind(rows, kind_index):
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(r[kind_index], []).append(r)
    return out


_NOUNS = _by_kind(W.NOUNS, 2)
_ADJS = _by_kind(W.ADJECTIVES, 1)
_VERBS = _by_kind(W.VERBS, 3)
_OBJECTS = [n for k in OBJECT_KINDS for n in _NOUNS.get(k, ())]
_LOOKS = _ADJS.get("look", []) + _ADJS.get("size", [])
# obj verbs by the object kind they accept, so a compatible verb is one lookup away
_OBJ_VERBS = {k: [v for v in _VERBS.get("obj", ()) if k in v[4]] for k in OBJECT_KINDS}


@dataclass
class Character:
    name: str
    kind: str  # "girl", "boy", "mom", "dad", or an animal noun
    gender: str  # "f" or "m"
    role: str  # "hero", "friend", "parent"


@dataclass
class StoryPlan:
    verb: str
    noun: str
    adjective: str
    features: tuple[str, ...]
    characters: list[Character] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "words": {"verb": self.verb, "noun": self.noun, "adjective": self.adjective},
            "features": list(self.features),
            "characters": [c.__dict__ for c in self.characters],
        }


@dataclass
class Story:
    text: str
    plan: StoryPlan

    @property
    def prompt(self) -> str:
        return story_prompt(self.plan)


# --- small pools that add variety between the plan's words -----------------------------------

_HOMES = (
    "a little town", "a quiet village", "a big city", "a cozy house", "a green valley",
    "a small house by the sea", "a busy town", "a sunny land", "a house near the woods",
    "a tiny village", "a land full of trees", "a warm little home", "a yellow house",
    "a town by a river", "a house on a hill",
)
_TIMES = (
    "One day", "One sunny day", "One morning", "One bright morning", "One afternoon",
    "One evening", "One cold morning", "One rainy day", "One windy day", "After lunch",
    "The next day", "One warm afternoon", "Later that day", "One Saturday", "One spring day",
    "One snowy morning", "After breakfast", "One summer day", "Early one morning",
)
_WEATHER = (
    "The sun was shining and the birds were singing.", "The sky was blue and the air was warm.",
    "It was a windy day, and the leaves danced in the air.", "Big white clouds floated in the sky.",
    "It had rained, and there were puddles everywhere.", "The grass was green and soft.",
    "The flowers were open and the bees were busy.", "A cool wind was blowing.",
    "It was a quiet day, and everything was still.", "Snow covered the ground like a blanket.",
)
_PROBLEMS = (  # (problem, how the hero fixes it); {b_*} is the friend in trouble
    ("was stuck in a bush", "pulled {b_him} out of the bush"),
    ("could not find {b_his} way home", "walked with {b_him} all the way home"),
    ("was sad because {b_he} had no one to play with", "played with {b_him}"),
    ("was very hungry", "shared a snack with {b_him}"),
    ("had a hurt leg", "put a soft bandage on the hurt leg"),
    ("was cold and shaking", "wrapped {b_him} in a warm blanket"),
    ("was too scared to cross the little bridge", "held {b_his} hand and crossed the bridge with {b_him}"),
    ("had fallen in the mud", "helped {b_him} wash off the mud"),
    ("could not reach the top shelf", "got a stool so {b_he} could reach"),
    ("had lost {b_his} hat in the wind", "ran after the hat and brought it back"),
)
_MORALS = (
    "sharing made everyone happy", "it was good to be kind to others",
    "friends help each other", "it was important to listen to {a_his} {par}",
    "saying sorry could fix a lot", "being patient was worth it",
    "it was better to play together than alone", "telling the truth was the right thing to do",
    "it was good to be careful", "trying again was better than giving up",
    "a good friend was worth more than any toy", "it was good to ask for help",
    "small things could make a big difference", "being brave did not mean not being scared",
)
_SPEECH = ("said", "said", "said", "asked", "shouted", "whispered", "cried", "called", "said softly")
_SAD_FEEL = ("sad", "very sad", "so sad", "sad and tired", "sad and lonely")
_SURPRISE = (
    "But then, something surprising happened.", "Suddenly, something strange happened.",
    "But then, there was a big surprise.", "Then, something no one expected happened.",
    "All of a sudden, everything changed.",
)


def _pronouns(prefix: str, gender: str, out: dict) -> None:
    he, him, his, hers, self_ = (("she", "her", "her", "hers", "herself") if gender == "f"
                                 else ("he", "him", "his", "his", "himself"))
    out[prefix + "he"], out[prefix + "him"], out[prefix + "his"] = he, him, his
    out[prefix + "hers"], out[prefix + "self"] = hers, self_
    out[prefix.upper() + "He"], out[prefix.upper() + "His"] = he.capitalize(), his.capitalize()


def _a(phrase: str) -> str:
    return f"{W.article(phrase)} {phrase}"


# --- the story parts --------------------------------------------------------------------------
# Each tuple holds alternative sentences for one step of a story; "_SAY" tuples are the ones used
# when the plan asks for dialogue. Keys: A/B/Par = hero/friend/parent, a_he/b_his/p_he ...
# pronouns (A_He capitalized), obj/look/place/act/ov/sv/feel/a_trait = the role words.

OPEN = (
    "Once upon a time, there was {a_trait} {a_desc} named {A}.",
    "Once upon a time, in {home}, there lived {a_trait} {a_desc} named {A}.",
    "There once was {a_trait} {a_desc} called {A}.",
    "{A} was {a_trait} {a_desc} who lived in {home}.",
    "In {home}, there was {a_trait} {a_desc}. {A_His} name was {A}.",
    "Once upon a time, {a_trait} {a_desc} named {A} lived in {home}.",
    "Long ago, in {home}, lived {a_trait} {a_desc} named {A}.",
    "Once there was {a_trait} {a_desc}, and {a_his} name was {A}.",
    "Not far away, in {home}, there lived {a_trait} {a_desc} named {A}.",
    "{A} was {a_trait} {a_desc}. {A_He} lived with {a_his} {par} in {home}.",
    "Once upon a time, there was {a_trait} {a_desc}. Everyone called {a_him} {A}.",
    "There was once {a_trait} {a_desc} named {A}, who lived in {home} with {a_his} {par}.",
    "In {home} lived {a_trait} {a_desc}. {A_His} name was {A}, and {a_he} was always busy.",
    "Once upon a time, in {home}, there was {a_trait} {a_desc}. {A_His} name was {A}.",
    "Many years ago, {a_trait} {a_desc} called {A} lived in {home}.",
    "{A} was {a_trait} {a_desc}. {A_He} had a small room with a big window.",
)
ACT = (
    "{A_He} [loved|liked|really liked] to {act}.",
    "More than anything, {A} liked to {act}.",
    "[Every day|Every morning|Each day|Most mornings], {A} would {act} with {a_his} {par}.",
    "{A}'s favorite thing to do was to {act}.",
    "{A_He} {acted} every morning, and it made {a_him} [very|so|really] happy.",
    "When the sun was up, {A} liked to {act} outside.",
    "{A_He} could {act} all day long.",
    "{A_His} {par} always smiled when {p_he} saw {A} {acting}.",
    "{A_He} was always {acting}, even when it was time for bed.",
    "Nobody in {home} liked to {act} as much as {A} did.",
    "Most days, {A} {acted} until {a_he} was too tired to go on.",
    "{A_He} {acted} in the morning and {acted} again after lunch.",
    "{A_His} favorite game was to {act} with {a_his} {par} before dinner.",
    "If {A} could {act} all day, {a_he} was happy.",
    "Whenever {a_he} had free time, {A} liked to {act}.",
    "{A} {acted} so much that {a_his} {par} laughed.",
)
ACT_SAY = (
    '"I love to {act}!" {A} always said.',
    'Every morning, {A} asked, "{Par}, can I {act} today?"',
    '"Look at me, {Par}! I can {act}!" {A} said with a [big|happy|wide|bright] smile.',
    '{A} liked to {act}. "It is the best thing in the world," {a_he} said.',
    '"Watch me {act}!" {A} called to {a_his} {par}.',
    '"Can we {act} now?" {A} asked {a_his} {par} every day.',
)
FEEL = (
    "{A} felt {feel}.",
    "{A_He} felt [very|so|really|a little] {feel} that day.",
    "For a while, {A} was {feel}.",
    "{A_He} was feeling {feel}, [and {a_he} did not know why|but {a_he} did not say so|and it would not go away].",
    "{A} sat down on [a rock|a bench|the grass|a log|the steps]. {A_He} felt {feel}.",
    "Deep inside, {A} felt {feel}.",
    "{A} did not say a word. {A_He} just felt {feel}.",
    "[All of a sudden|Suddenly|Then], {A} felt {feel}.",
    "{A} looked at the sky and felt {feel}.",
    "{A_He} had never felt so {feel} before.",
    "{A}'s face showed that {a_he} was {feel}.",
)
FEEL_NAMED = tuple(t for t in FEEL if t.startswith("{A}"))  # after a sentence about the friend
FEEL_SAY = (
    '"I feel {feel}," {A} {says}.',
    '{A} looked at {a_his} {par}. "I am so {feel}," {a_he} {says}.',
    '"Why do I feel so {feel}?" {A} asked.',
    '{A} told {a_his} {par}, "I feel {feel} today."',
)

# the plan's object, introduced by plot
FIND = (
    "{time}, {A} went to the {place}. There, {a_he} found {a_look_obj}.",
    "{time}, {A} and {a_his} {par} went to the {place}. Near a [big tree|tall tree|little bridge|flower bed|wooden fence], {A} saw {a_look_obj} on the ground.",
    "{time}, {A} was walking in the {place} when {a_he} saw something. It was {a_look_obj}!",
    "{time}, {A} was playing at the {place}. Under a bush, {a_he} found {a_look_obj}.",
    "{time}, {A} went for a walk to the {place}. Something was hiding in the grass. It was {a_look_obj}!",
    "{time}, {A} went to play at the {place}. {A_He} looked down and saw {a_look_obj} in the grass.",
    "{time}, while {A} was at the {place}, {a_he} found {a_look_obj} under some leaves.",
    "{time}, {A} ran to the {place}. Next to a big stone, there was {a_look_obj}.",
    "{time}, {A} walked along the path to the {place}. There, {a_he} spotted {a_look_obj}.",
)
OWN = (
    "{A} had {a_look_obj}. {A_He} took it [everywhere {a_he} went|to every place {a_he} went|with {a_him} all the time].",
    "{A_His} {par} had given {a_him} {a_look_obj}, and {A} loved it very much.",
    "{A}'s favorite thing was {a_look_obj}. {A_He} kept it next to {a_his} bed.",
    "{A} had {a_look_obj} that {a_he} loved more than anything.",
    "{A} had {a_look_obj}. It was the best thing {a_he} had.",
    "{A}'s {par} gave {a_him} {a_look_obj} on {a_his} birthday, and {A} kept it close every day.",
    "{A} had {a_look_obj}. {A_He} never went anywhere without it.",
)
WANT = (
    "{time}, {A} went to the {place} with {a_his} {par}. There, {a_he} saw {a_look_obj}, and {a_he} wanted it [very much|more than anything|so badly].",
    "{time}, at the {place}, {A} saw {a_look_obj}. {A_He} wished it was {a_hers}.",
    "{time}, {A} saw {a_look_obj} high up on a shelf at the {place}. {A_He} wanted it so much.",
    "{time}, {A} and {a_his} {par} walked past the {place}. {A} saw {a_look_obj} there and could not stop looking at it.",
    "{time}, {A} saw another child with {a_look_obj} at the {place}. {A_He} wanted one just like it.",
    "{time}, {A} spotted {a_look_obj} at the {place}. {A_He} wished and wished for it.",
)
LOOK = (  # a second adjective for the object, so the plan's one is not repeated
    "It was very {look2}.", "The {obj} was so {look2}.", "{A} had never seen [such {a_look2} {obj}|{a_obj} so {look2}].",
    "It looked {look2} in the [sun|light|morning light].", "It was {look2}, and {A} [liked it a lot|could not stop smiling|wanted to keep it].",
    "It was {look2} and [a little bit|also|a bit] {look3}.", "The {obj} felt {look2} in {a_his} hands.",
)
OBJ_VERB = (
    "{A_He} wanted to {ov} {the_vobj}.",
    "Later, {A} {oved} {the_vobj}.",
    "{A} spent the whole [afternoon|morning|day] {oving} {the_vobj}.",
    "First, {A} {oved} {the_vobj}, [and it was a lot of fun|and it was so much fun|and {a_he} loved it|and it made {a_him} laugh].",
    "{A_He} {oved} {the_vobj} [with great care|very gently|slowly and carefully|as well as {a_he} could].",
    "{A} tried to {ov} {the_vobj} all by {a_self}.",
    "{A_He} decided to {ov} {the_vobj}.",
    "For a long time, {A} {oved} {the_vobj}.",
    "{A} was {oving} {the_vobj} when {a_his} {par} called {a_him}.",
    "With a big smile, {A} {oved} {the_vobj}.",
)
OBJ_VERB_SAY = (
    '"Can I {ov} {the_vobj}?" {A} asked {a_his} {par}. "Yes, you can," said {a_his} {par}.',
    '"I want to {ov} {the_vobj}!" {A} {says}. So {a_he} did.',
    '"Look, I can {ov} {the_vobj}!" said {A}.',
)
MEET = (
    "Then {A} met {b_intro}.",
    "Soon, {b_intro} came by.",
    "At the {place}, {A} saw {b_intro}.",
    "{A_His} friend {B} came [to play|over to play|to visit]. {B} was {b_a_desc}.",
    "[Just then|Right then|At that moment], {b_intro} walked [over|up to {a_him}|by].",
    "On the way, {A} bumped into {b_intro}.",
    "[Before long|Soon|Not long after], {A} noticed {b_intro} sitting all alone.",
    "Then {b_intro} came over to see what {A} was doing.",
    "Later, {A} met {b_intro} who lived nearby.",
)
MEET_SAY = (
    'Then {A} met {b_intro}. "Hello, I am {B}," {b_he} said. "Hi, I am {A}," said {A}.',
    '"Hi! Can I play too?" asked {b_intro}.',
    '"What are you doing?" asked {b_intro}. "Come and see," said {A}.',
)
SOCIAL = (
    "{A} [ran|walked|went] [over |]to {B} and {sved} {b_him}.",
    "{A} wanted to {sv} {B}.",
    "[Before long|Soon|Not long after], {A} {sved} {B}.",
    "{A} {sved} {B}, and {B} smiled.",
    "{A} was happy to {sv} {a_his} new friend.",
    "That day, {A} {sved} {B} [for the first time|in a friendly way|right there|without a word].",
    "{A} [smiled and|grinned and|happily] {sved} {B}.",
    "Then {A} {sved} {B} [one more time|again|once more].",
    "{A} did not wait. {A_He} {sved} {B} right away.",
    "After that, {A} {sved} {B} [every time they met|whenever they played|each morning].",
)
TOGETHER = (
    "They {acted} together [until the sun went down|until it got dark|until dinner time|until the stars came out|until the sky turned orange].",
    "{A} and {B} {acted} together [all afternoon|for a long time|all morning|for hours].",
    "Then they went to {act} at the {place}.",
    "They [laughed|giggled|talked] and {acted} and had [a great time|so much fun|the best time].",
    "{B} liked to {act} too, so they did it together.",
    "Then {A} and {B} {acted} side by side.",
    "Soon, {A} and {B} were {acting} together and laughing.",
    "They {acted} and {acted} until they were both tired.",
    "The two friends {acted} under the big blue sky.",
)
TOGETHER_SAY = (
    '"Let\'s {act} together!" said {B}. So they did.',
    '"Do you like to {act}?" {A} asked. "Yes!" said {B}. They {acted} together.',
)
CONFLICT = (
    "But {B} wanted the {obj} too. {B_He} grabbed it, and {A} pulled it back.",
    "{A} and {B} began to fight over the {obj}. Each of them wanted it.",
    "{B} did not want to share. {B_He} held the {obj} close and would not give it back.",
    "Soon, {A} and {B} did not agree. {B} wanted to keep the {obj}, and {A} wanted it back.",
)
CONFLICT_SAY = (
    '"That is my {obj}!" {B} {says}. "No, it is mine!" said {A}. They pulled and pulled.',
    '"Give me the {obj}," {B} said. "No, I found it first," said {A}. They both got angry.',
    '"I want the {obj}!" {B} {says}. "But it is mine," said {A}. They began to fight.',
)
FIX_CONFLICT = (
    "Then {A} had an idea. They could take turns with the {obj}.",
    "After a while, {A} and {B} said sorry to each other and decided to share.",
    "Then {A} saw that {B} was sad, so {a_he} gave {b_him} a turn with the {obj}.",
)
FIX_CONFLICT_SAY = (
    '"Let\'s take turns," said {A}. "Okay," said {B}. "You go first."',
    '"I am sorry," said {B}. "We can share it," said {A}. They both smiled.',
)
HELP = (  # {problem}/{fix} come from _PROBLEMS
    "{time}, {A} was at the {place} when {a_he} saw {b_intro}. {B} {problem}.",
    "{time}, {A} went to the {place}. There, {a_he} met {b_intro} who {problem}.",
    "{time}, {A} heard a small cry at the {place}. It was {b_intro}, and {b_he} {problem}.",
    "{time}, {A} went to the {place} and found {b_intro}. {B} {problem}.",
    "{time}, while playing at the {place}, {A} saw that {b_intro} {problem}.",
)
HELP_DO = (
    "{A} wanted to help. {A_He} {fix}.",
    "{A} did not walk away. {A_He} {fix}.",
    "{A} thought for a moment. Then {a_he} {fix}.",
    "{A} knew what to do. {A_He} {fix}.",
    "{A} was small, but {a_he} wanted to help. So {a_he} {fix}.",
)
HELP_SAY = (
    '"Don\'t worry, I will help you," {A} said. {A_He} {fix}.',
    '"Can you help me?" asked {B}. "Yes!" said {A}, and {a_he} {fix}.',
)
TAKE = (
    "{time}, {A} took the {obj} to the {place}.",
    "{time}, {A} and {a_his} {par} went to the {place}, and {A} brought the {obj} along.",
    "{time}, {A} put the {obj} in {a_his} bag and walked to the {place}.",
)
SHOW = (
    "{A} showed {B} {a_his} {look} {obj}.",
    "Then {A} let {B} see {a_his} {look} {obj}.",
    "{A} had brought {a_his} {look} {obj}, and {a_he} showed it to {B}.",
)
LOSE = (
    "When it was time to go [home|back home|inside], the {obj} was gone!",
    "{A} put the {obj} down to rest. When {a_he} looked again, it was not there.",
    "Then a strong wind came, and the {obj} was gone.",
    "{A} played for a while. Then {a_he} looked around, and the {obj} was gone!",
    "Later, {A} could not find the {obj} anywhere.",
)
SEARCH = (
    "{A} and {B} looked [everywhere|all around|in every corner]. They looked under the trees and behind the rocks.",
    "{B} helped {A} look for it. They searched the whole {place}.",
    "They looked [high and low|near and far|up and down] for the {obj}.",
    "They looked in the grass, under the bench and behind the trees.",
    "{A} called {B}, and together they looked all over the {place}.",
)
FOUND = (
    "At last, {B} found the {obj} under a big leaf.",
    "Finally, they found the {obj} behind a bush. It was safe!",
    "Then {A} saw it. The {obj} was right where {a_he} had left it.",
    "After a long search, {B} called out that {b_he} had found it.",
    "At last, there it was, next to a little rock.",
)
EARN = (
    "{A} helped {a_his} {par} every day to earn it.",
    "{A} saved every coin {a_he} got for many days.",
    "{A} asked {a_his} {par} very nicely, many times.",
    "[Every day|Every morning|Each day|Most mornings], {A} did {a_his} chores without being asked.",
    "{A} waited and waited, and {a_he} did not complain.",
)
GET = (
    "At last, {a_his} {par} gave {a_him} the {obj}.",
    "Finally, the {obj} was {a_hers}.",
    "In the end, {A} got the {obj}, and {a_he} held it tight.",
    "One day, {a_his} {par} surprised {a_him} with the {obj}.",
)
# Foreshadowing: an early hint, an event that makes it come true, and a character who remembers.
FORESHADOW = (
    (  # a warning about the object
        ("{A}'s {par} told {a_him} to be careful with the {obj}, or it might get hurt.",
         "Before they left, {a_his} {par} said {A} should hold the {obj} tight.",
         "{A_His} {par} looked at the {obj} and told {A} to watch out for puddles."),
        ('{A_His} {par} said, "Be careful with the {obj}. Puddles are everywhere today."',
         '"Hold the {obj} tight," {a_his} {par} told {a_him}. "The path is slippery."'),
        ("Then {A} slipped on a wet stone, and the {obj} fell into a muddy puddle.",
         "[Just then|Right then|At that moment], {A} tripped over a root. The {obj} flew into the mud.",
         "On the way, a big dog ran past, and the {obj} fell into a puddle."),
        ("{A} remembered what {a_his} {par} had said.",
         "{A_His} {par} had been right all along.",
         "{A} wished {a_he} had listened to {a_his} {par}."),
        ("{A} washed the {obj} in the pond until it was clean again.",
         "{A_His} {par} helped {a_him} clean the {obj}, and it looked like new."),
    ),
    (  # the weather
        ("That morning, {A} noticed dark clouds in the sky, but {a_he} did not think much of it.",
         "Far away, gray clouds were gathering over the hills.",
         "The wind smelled like rain that day, but {A} did not notice."),
        ('"It might rain today," {a_his} {par} said, looking at the gray sky.',
         '"Take your coat," said {a_his} {par}. "I think a storm is coming."'),
        ("Then the dark clouds came closer, and big drops of rain began to fall.",
         "Soon the sky turned gray, and rain began to pour down.",
         "All at once, thunder boomed and the rain came."),
        ("{A} thought of the clouds {a_he} had seen in the morning.",
         "The clouds from the morning had come after all.",
         "{A} remembered the gray sky from that morning."),
        ("They ran under a big tree and waited until the rain stopped.",
         "They hid in a little shed until the sun came out again."),
    ),
)
TWIST = (
    "The {obj} was not just any {obj}. It was magic, and it began to glow!",
    "It turned out that the {obj} had belonged to {B} all along.",
    "{B} was not what {A} had thought. {B_He} was {royal}!",
    "Under the {obj}, there was a tiny golden key.",
)
HAPPY_END = (
    "{A} and {B} became [best friends|good friends|the best of friends].",
    "From then on, {A} and {B} {acted} together every day.",
    "{A} went home with a [big|happy|wide|bright] smile on {a_his} face.",
    "That night, {A} went to bed happy, with the {obj} by {a_his} side.",
    "{A} and {B} played until it was time to go [home|back home|inside]. It was the [best day ever|happiest day of the year|best day {a_he} could remember].",
    "And they all lived happily ever after.",
    "{A} hugged {a_his} {par} and told {p_him} all about the day.",
    "{A} and {B} waved goodbye and promised to [play again soon|meet again the next day|play again tomorrow].",
    "That evening, {A} told {a_his} {par} about {a_his} new friend.",
    "From that day on, the {obj} was {A}'s favorite thing in the world.",
    "{A} felt [warm and happy|happy and proud|warm and cozy] inside.",
    "When {A} went to sleep that night, {a_he} smiled.",
)
BAD_END = (
    "Then the {obj} fell on a hard rock and broke, and it could not be fixed. {A} was {sad}.",
    "Then a big wind took the {obj} far away. {A} never saw the {obj} again and went home {sad}.",
    "But a big dog ran off with the {obj}, and it was gone forever. {A} cried all the way [home|back home|to bed].",
    "Then {B} got angry, went away and did not come back. {A} was {sad}.",
    "After that, nothing went right. The {obj} got lost, and {A} sat alone and felt {sad}.",
    "Then it began to rain, and the {obj} was ruined. {A} walked home slowly and felt {sad}.",
    "When they got home, the {obj} was gone forever. {A_His} {par} gave {a_him} a hug, but {A} was still {sad}.",
    "On the way home, the {obj} slipped and cracked, and it could not be fixed. {A} went to bed {sad} that night.",
)
MORAL = (
    "{A} learned that {moral}.",
    "From that day on, {A} knew that {moral}.",
    "That day, {A} learned a big lesson: {moral}.",
    "{A_He} would always remember that {moral}.",
    "{A} understood that {moral}.",
    "It was a hard day, but {A} learned that {moral}.",
)
MORAL_SAY = (
    '{A_His} {par} said, "Remember, {moral_now}." {A} nodded.',
)


# Detail sentences bring extra random words in (a second animal, place, food, ...).
DETAIL = (
    "[Along the way|On the way|Nearby|Not far from there], {a_he} [saw|spotted|noticed] {a_animal2} {acting2} [near|next to|behind|beside] {a_nature2}.",
    "{A_a_look4_animal2} [watched from behind a tree|peeked out from a bush|sat quietly on a wall|looked down from a branch].",
    "{A} [stopped to look at|bent down to look at|pointed at] {a_look4_nature2} [on the ground|by the path|in the grass].",
    "The air smelled like [fresh|warm|sweet] {food2s}.",
    "There were {look4} {nature2s} [all over the ground|along the path|everywhere {a_he} looked].",
    "[Not far away|Close by|Over by the {place2}], {a_animal2} was {acting2} [in the grass|in the sun|by itself].",
    "{A} waved at {a_animal2} that was [sitting on a fence|resting in the shade|looking at {a_him}].",
    "{A_His} {par} had packed {a_food2} and {a_food3} [for later|for the trip|in a little basket].",
    "Somewhere [nearby|far away|up in the trees], a [little|tiny|happy] bird was [singing|calling|chirping].",
    "{A} [walked past|went by|ran past] the {place2} and the {place3}.",
    "{A} picked up {a_nature2} and put it in {a_his} [pocket|bag|basket].",
    "[Just then|For a moment|Right then], {a_look4_butterfly} [flew past|landed near|danced around] {a_his} nose.",
    "Two {animal2s} were {acting2} [by the {place2}|under a tree|in the grass].",
    "{A} heard {a_animal2} [in the bushes|behind the fence|somewhere close].",
    "{A} [ate|shared|had] {a_food2} and felt ready for [the day|anything|an adventure].",
    "{A} put {a_his} {thing2} in {a_his} bag, [just in case|to keep it safe|for later].",
    "There was {a_look4_thing2} [on the bench|by the door|under a chair].",
    "[Far away|In the distance|Over the hill], {a_he} could see the {place2}.",
    "A [soft|warm|cool|gentle] wind moved the {nature2s}.",
    "{A} [hummed|sang] a little song about {a_animal2} and {a_food2}.",
)


_ALT = re.compile(r"\[([^\[\]]*)\]")
_CONNECT = (
    "Then", "After that", "Soon", "Later", "Next", "Right away", "A little later", "Now",
    "Before long", "In a moment", "After a while", "This time", "Just then", "So",
)
_CONNECTABLE = ("He ", "She ", "They ", "It ")


class _Writer:
    """Builds one story from a seeded random stream."""

    __slots__ = ("rng", "c", "say", "names")

    def __init__(self, rng: random.Random, c: dict, say: bool):
        self.rng, self.c, self.say = rng, c, say
        self.names = (c["A"] + " ", c["B"] + " ")

    def s(self, plain, spoken=None, link: bool = True) -> str:
        rng, c = self.rng, self.c
        pool = spoken if (self.say and spoken and rng.random() < 0.6) else plain
        c["says"] = rng.choice(_SPEECH)
        t = rng.choice(pool)
        if "[" in t:  # [a|b|c]: one of the alternatives
            t = _ALT.sub(lambda m: rng.choice(m.group(1).split("|")), t)
        out = t.format_map(c)
        if link and rng.random() < 0.2:  # a linking word in front of a plain "Max ..." / "She ..." sentence
            if out.startswith(self.names):
                out = f"{rng.choice(_CONNECT)}, {out}" if rng.random() < 0.5 else f"{rng.choice(_CONNECT)} {out}"
            elif out.startswith(_CONNECTABLE):
                out = f"{rng.choice(_CONNECT)} {out[0].lower()}{out[1:]}"
        return out


def _characters(rng: random.Random, noun_row) -> tuple[Character, Character, Character]:
    def child(role, gender=None):
        gender = gender or rng.choice("fm")
        return Character(rng.choice(W.GIRL_NAMES if gender == "f" else W.BOY_NAMES),
                         "girl" if gender == "f" else "boy", gender, role)

    def animal(role, kind=None):
        kind = kind or rng.choice(_NOUNS["animal"])[0]
        return Character(rng.choice(W.PET_NAMES), kind, rng.choice("fm"), role)

    if noun_row[2] == "animal":
        if rng.random() < 0.4:
            hero, friend = animal("hero", noun_row[0]), (child if rng.random() < 0.5 else animal)("friend")
        else:
            hero, friend = child("hero"), animal("friend", noun_row[0])
    else:
        hero = child("hero") if rng.random() < 0.7 else animal("hero")
        friend = child("friend") if rng.random() < 0.5 else animal("friend")
    while friend.name == hero.name:
        friend.name = rng.choice(W.PET_NAMES if friend.kind not in ("girl", "boy") else
                                 W.GIRL_NAMES if friend.gender == "f" else W.BOY_NAMES)
    parent = Character("Mom", "mom", "f", "parent") if rng.random() < 0.6 else Character("Dad", "dad", "m", "parent")
    return hero, friend, parent


def _plan(rng: random.Random):
    verb, noun, adj = rng.choice(W.VERBS), rng.choice(W.NOUNS), rng.choice(W.ADJECTIVES)
    k = rng.choices((0, 1, 2, 3), weights=(15, 35, 30, 20))[0]
    features = tuple(sorted(rng.sample(FEATURES, k), key=FEATURES.index))
    return verb, noun, adj, features


def _context(rng, verb, noun, adj, hero, friend, parent) -> dict:
    c: dict = {}
    ch = rng.choice
    c["A"], c["B"] = hero.name, friend.name
    _pronouns("a_", hero.gender, c)
    _pronouns("b_", friend.gender, c)
    _pronouns("p_", parent.gender, c)
    c["par"], c["Par"] = parent.kind, parent.name
    c["home"] = ch(_HOMES)
    c["time"] = ch(_TIMES)
    c["royal"] = "a princess in disguise" if friend.gender == "f" else "a prince in disguise"

    # roles: the plan's word where its kind fits, a random word of the right kind elsewhere
    obj = noun if noun[2] in OBJECT_KINDS else ch(_OBJECTS)
    c["obj"], c["a_obj"] = obj[0], _a(obj[0])
    look = adj[0] if adj[1] in ("look", "size") else ch(_LOOKS)[0]
    c["look"], c["a_look_obj"] = look, _a(f"{look} {obj[0]}")
    look2, look3 = ch(_LOOKS)[0], ch(_LOOKS)[0]
    c["look2"], c["a_look2"], c["look3"] = look2, _a(look2), look3
    c["place"] = noun[0] if noun[2] == "place" else ch(_NOUNS["place"])[0]
    feel = adj[0] if adj[1] == "feeling" else ch(_ADJS["feeling"])[0]
    trait = adj[0] if adj[1] == "trait" else ch(_ADJS["trait"])[0]
    c["feel"], c["a_trait"] = feel, _a(trait)
    c["a_desc"] = "little " + hero.kind

    act = verb if verb[3] == "act" else ch(_VERBS["act"])
    c["act"], c["acted"], c["acting"] = act[0], act[1], act[2]
    if verb[3] == "obj":
        ov = verb
        vobj = obj if obj[2] in ov[4] else ch([n for k in ov[4] for n in _NOUNS.get(k, ())])
    else:
        ov, vobj = ch(_OBJ_VERBS[obj[2]]), obj
    c["ov"], c["oved"], c["oving"] = ov[0], ov[1], ov[2]
    c["the_vobj"] = f"the {obj[0]}" if vobj is obj else _a(vobj[0])
    sv = verb if verb[3] == "social" else ch(_VERBS["social"])
    c["sv"], c["sved"] = sv[0], sv[1]

    animal2 = ch(_NOUNS["animal"])
    act2 = ch(_VERBS["act"])
    nature2, food2, food3, thing2 = ch(_NOUNS["nature"]), ch(_NOUNS["food"]), ch(_NOUNS["food"]), ch(_NOUNS["thing"])
    look4 = ch(_LOOKS)[0]
    c["a_animal2"], c["animal2s"], c["acting2"] = _a(animal2[0]), animal2[1], act2[2]
    c["A_a_look4_animal2"] = _a(f"{look4} {animal2[0]}").capitalize()
    c["a_nature2"], c["nature2s"], c["a_look4_nature2"] = _a(nature2[0]), nature2[1], _a(f"{look4} {nature2[0]}")
    c["food2s"], c["a_food2"], c["a_food3"] = food2[1], _a(food2[0]), _a(food3[0])
    c["thing2"], c["a_look4_thing2"], c["look4"] = thing2[0], _a(f"{look4} {thing2[0]}"), look4
    c["a_look4_butterfly"] = _a(f"{look4} butterfly")
    c["place2"], c["place3"] = ch(_NOUNS["place"])[0], ch(_NOUNS["place"])[0]
    fk = friend.kind
    c["b_a_desc"] = _a(fk) if fk in ("girl", "boy") else _a("little " + fk)
    c["b_intro"] = f"{c['b_a_desc']} named {friend.name}"
    c["sad"] = ch(_SAD_FEEL)
    m = ch(_MORALS)
    c["moral"] = m.format_map(c)
    c["moral_now"] = (m.replace(" was ", " is ").replace(" made ", " makes ").replace(" could ", " can ")
                      .replace(" did not ", " does not ").replace("{a_his} {par}", "your " + parent.kind))
    return c


def _compose(rng: random.Random, c: dict, features: tuple[str, ...], obj_kind: str) -> str:
    say = "dialogue" in features
    w = _Writer(rng, c, say)
    s = w.s
    has = features.__contains__
    bad = has("bad ending")

    plots = ["find", "want", "help"] + (["lose"] if obj_kind != "food" else [])
    plot = rng.choice(plots)
    if plot == "help":
        problem, fix = rng.choice(_PROBLEMS)
        c["problem"], c["fix"] = problem.format_map(c), fix.format_map(c)
    fore = rng.choice(FORESHADOW) if has("foreshadowing") else None
    hint = s(*fore[:2]) if fore else None

    p1 = [s(OPEN, link=False), s(ACT, ACT_SAY)]
    if rng.random() < 0.3:
        p1.append(rng.choice(_WEATHER) if not fore or fore is FORESHADOW[0] else "")
    p2: list[str] = []
    p3: list[str] = []
    p4: list[str] = []

    if plot == "find":
        p2 += [s(FIND), s(LOOK), s(FEEL, FEEL_SAY)]
        if hint:
            p2.append(hint)
        p2.append(s(OBJ_VERB, OBJ_VERB_SAY))
        p3 += [s(MEET, MEET_SAY), s(SOCIAL)]
    elif plot == "lose":
        p1.append(s(OWN))
        if hint:
            p1.append(hint)
        p2 += [s(TAKE), s(LOOK), s(OBJ_VERB, OBJ_VERB_SAY), s(MEET, MEET_SAY), s(SOCIAL)]
        p3 += [s(LOSE), s(FEEL, FEEL_SAY), s(SEARCH)]
        if not bad:
            p3.append(s(FOUND))
    elif plot == "want":
        p2 += [s(WANT), s(LOOK)]
        if hint:
            p2.append(hint)
        p2 += [s(FEEL, FEEL_SAY), s(EARN)]
        if not bad:
            p2.append(s(GET))
        p3 += [s(MEET, MEET_SAY), s(SOCIAL), s(OBJ_VERB, OBJ_VERB_SAY)]
    else:  # help
        if hint:
            p1.append(hint)
        p2 += [s(HELP), s(FEEL_NAMED, FEEL_SAY), s(HELP_DO, HELP_SAY), s(SOCIAL)]
        p3 += [s(SHOW), s(LOOK), s(OBJ_VERB, OBJ_VERB_SAY)]

    if has("conflict"):
        p3.append(s(CONFLICT, CONFLICT_SAY))
        if not bad:
            p3.append(s(FIX_CONFLICT, FIX_CONFLICT_SAY))
    if has("plot twist"):
        p3 += [rng.choice(_SURPRISE), s(TWIST)]
    if fore:
        p3 += [s(fore[2]), s(fore[3])]
        if not bad:
            p3.append(s(fore[4]))
    if not bad:
        p3.append(s(TOGETHER, TOGETHER_SAY))
    p4.append(s(BAD_END) if bad else s(HAPPY_END))
    if has("moral value"):
        p4.append(s(MORAL, MORAL_SAY))
    for _ in range(rng.choice((1, 2, 2, 3, 3))):  # a few details, never first in a paragraph
        para = rng.choice((p1, p2, p2, p3))
        para.insert(rng.randint(1, len(para)), s(DETAIL))
    paras = [p for p in (p1, p2, p3, p4) if p]
    return "\n".join(" ".join(x for x in p if x) for p in paras)


def generate_story(seed: int = 0, index: int = 0) -> Story:
    """Story number `index` of the stream for `seed` (independent of how many are generated)."""
    rng = random.Random(f"tinygpt-stories:{seed}:{index}")
    verb, noun, adj, features = _plan(rng)
    hero, friend, parent = _characters(rng, noun)
    c = _context(rng, verb, noun, adj, hero, friend, parent)
    obj_kind = noun[2] if noun[2] in OBJECT_KINDS else None
    for _ in range(8):  # nearly always the first try; a too short or long draw is redrawn
        text = _compose(rng, c, features, obj_kind or "toy")
        if (MIN_WORDS <= text.count(" ") + text.count("\n") + 1 <= MAX_WORDS
                and ("dialogue" not in features or '"' in text)):
            break
    plan = StoryPlan(verb[0], noun[0], adj[0], features, [hero, friend, parent])
    return Story(text, plan)


def generate(count: int, seed: int = 0, start: int = 0) -> Iterator[Story]:
    """Stories `start` .. `start + count - 1` of the stream for `seed`."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    for i in range(start, start + count):
        yield generate_story(seed, i)


_FEATURE_TEXT = {
    "dialogue": "the story should have at least one line of dialogue",
    "bad ending": "the story should have a sad or bad ending",
    "moral value": "the story should teach a lesson or a moral value",
    "plot twist": "something unexpected should happen in the story",
    "foreshadowing": "an early hint should tell of something that happens later",
    "conflict": "the story should have a conflict or a problem to solve",
}


def story_prompt(plan: StoryPlan) -> str:
    """The natural-language request an LLM could be given to write a story for this plan."""
    text = (
        "Write a short story (3-5 paragraphs) using only very simple words that a 3-year-old "
        f'child would understand. Use the verb "{plan.verb}", the noun "{plan.noun}" and the '
        f'adjective "{plan.adjective}".'
    )
    if plan.features:
        text += " Features: " + "; ".join(_FEATURE_TEXT[f] for f in plan.features) + "."
    return text + " Keep the words simple!"


def story_json(story: Story, prompt_only: bool = False) -> str:
    """One JSONL line: the story and its plan (as TinyStories' JSON shards hold them), or with
    `prompt_only` the request and the plan, without the story."""
    d = {"story": story.text} if not prompt_only else {}
    d.update(prompt=story.prompt, **story.plan.to_json(), source="tinygpt-stories")
    return json.dumps(d, ensure_ascii=False)


def story_txt(story: Story) -> str:
    """The story in the TinyStories .txt layout: its text, then an `<|endoftext|>` line."""
    return story.text + "\n<|endoftext|>\n"


def write_txt(path, count: int, seed: int = 0) -> None:
    """Writes stories 0..count-1 of `seed` to a .txt file (atomically)."""
    from tinygpt.fileio import atomic_write

    with atomic_write(path, newline="\n") as f:
        for st in generate(count, seed=seed):
            f.write(story_txt(st))
