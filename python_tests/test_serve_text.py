"""The server's text handling without a server: stop sequences cut the streamed text where the
first one completes, however the tokens split the characters; a chat becomes one story."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from tinygpt.serve.prompts import flatten_chat
from tinygpt.serve.protocol import ChatRequest
from tinygpt.serve.textstream import ChoiceText
from tinygpt.tokenizer import Tokenizer

BYTES = Tokenizer([bytes([i]) for i in range(256)])  # one token per byte: tokens split characters

text_st = st.text(alphabet=st.sampled_from("ab c.é☃🐈"), max_size=40)


def expected(text: str, stops: list[str]) -> tuple[str, bool]:
    """Generation stops at the first character that completes a stop sequence; the text ends
    before the earliest-starting stop sequence complete there."""
    for k in range(1, len(text) + 1):
        cuts = [text[:k].find(s) for s in stops if s in text[:k]]
        if cuts:
            return text[: min(cuts)], True
    return text, False


@settings(max_examples=300, deadline=None)
@given(text_st, st.lists(st.text(alphabet=st.sampled_from("ab c.é☃"), min_size=1, max_size=4), max_size=3))
def test_stop_sequences_cut_the_stream_as_they_cut_the_whole_text(text, stops):
    ct = ChoiceText(BYTES, stops)
    out = ""
    for b in text.encode():
        piece = ct.add(b)
        out += piece
        assert ct.text == out
        if ct.stopped:
            break
    out += ct.finish()
    want, stopped = expected(text, stops)
    assert (out, ct.stopped) == (want, stopped)
    # nothing of a stop sequence is ever shown before it is known not to be one
    assert all(s not in out for s in stops)


def test_tokens_after_a_stop_are_not_taken():
    ct = ChoiceText(BYTES, ["cat"])
    for b in b"a cat sat":
        ct.add(b)
    assert ct.stopped and ct.text == "a " and ct.tokens == len(b"a cat")


def test_a_chat_is_the_story_its_user_and_assistant_turns_tell():
    req = ChatRequest(messages=[
        {"role": "system", "content": "You are a storyteller."},
        {"role": "user", "content": "Tom had a ball."},
        {"role": "assistant", "content": [{"type": "text", "text": "He threw it."}]},
        {"role": "user", "content": " It flew"},
        {"role": "developer", "content": "ignored"},
        {"role": "assistant", "content": "\nhigh"},
    ])
    assert flatten_chat(req) == "Tom had a ball. He threw it. It flew\nhigh"
