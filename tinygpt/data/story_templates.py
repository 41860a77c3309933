"""The sentence templates and phrase pools of the story generator (`tinygpt.data.stories`): data,
not code, so this module may be long.

Templates are `str.format_map` patterns over the story context (see `stories._context`) and may
hold ``[a|b|c]`` choices, one picked at random. Changing, adding or reordering an entry changes
the generated stories (story `i` of seed `s` is drawn from these tables by position).
"""

# --- small pools that add variety between the plan's words -----------------------------------

HOMES = (
    "a little town", "a quiet village", "a big city", "a cozy house", "a green valley",
    "a small house by the sea", "a busy town", "a sunny land", "a house near the woods",
    "a tiny village", "a land full of trees", "a warm little home", "a yellow house",
    "a town by a river", "a house on a hill",
)
TIMES = (
    "One day", "One sunny day", "One morning", "One bright morning", "One afternoon",
    "One evening", "One cold morning", "One rainy day", "One windy day", "After lunch",
    "The next day", "One warm afternoon", "Later that day", "One Saturday", "One spring day",
    "One snowy morning", "After breakfast", "One summer day", "Early one morning",
)
WEATHER = (
    "The sun was shining and the birds were singing.", "The sky was blue and the air was warm.",
    "It was a windy day, and the leaves danced in the air.", "Big white clouds floated in the sky.",
    "It had rained, and there were puddles everywhere.", "The grass was green and soft.",
    "The flowers were open and the bees were busy.", "A cool wind was blowing.",
    "It was a quiet day, and everything was still.", "Snow covered the ground like a blanket.",
)
PROBLEMS = (  # (problem, how the hero fixes it); {b_*} is the friend in trouble
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
MORALS = (
    "sharing made everyone happy", "it was good to be kind to others",
    "friends help each other", "it was important to listen to {a_his} {par}",
    "saying sorry could fix a lot", "being patient was worth it",
    "it was better to play together than alone", "telling the truth was the right thing to do",
    "it was good to be careful", "trying again was better than giving up",
    "a good friend was worth more than any toy", "it was good to ask for help",
    "small things could make a big difference", "being brave did not mean not being scared",
)
SPEECH = ("said", "said", "said", "asked", "shouted", "whispered", "cried", "called", "said softly")
SAD_FEEL = ("sad", "very sad", "so sad", "sad and tired", "sad and lonely")
SURPRISE = (
    "But then, something surprising happened.", "Suddenly, something strange happened.",
    "But then, there was a big surprise.", "Then, something no one expected happened.",
    "All of a sudden, everything changed.",
)


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
HELP = (  # {problem}/{fix} come from PROBLEMS
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


# Linking words put in front of some sentences (`stories._Writer`).
CONNECT = (
    "Then", "After that", "Soon", "Later", "Next", "Right away", "A little later", "Now",
    "Before long", "In a moment", "After a while", "This time", "Just then", "So",
)
