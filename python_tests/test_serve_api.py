"""`tinygpt serve` as its users meet it: a real server process on 127.0.0.1 serving a tiny trained
run, called with the official `openai` client and with httpx. What it writes equals `tinygpt
generate` with the same seed, streamed or not, one choice or many."""

from __future__ import annotations

import httpx
import openai
import pytest
import torch

from serve_helpers import SAMPLING, continuation, generate_cli, served
from tinygpt.generate import encode_prompt
from tinygpt.training.checkpoint import load_run

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def run(serve_run):
    return serve_run


@pytest.fixture(scope="module")
def url(run):
    with served(run, "--dtype", "fp32", "--max-batch", "8") as u:
        yield u


@pytest.fixture(scope="module")
def client(url):
    return openai.OpenAI(base_url=url + "/v1", api_key="dummy", max_retries=0)


@pytest.fixture(scope="module")
def model_name(client):
    return client.models.list().data[0].id


def finish(sample: dict) -> str:
    return "stop" if sample["finish_reason"] == "eot" else "length"


# ------------------------------------------------------------------------------------------------
# The same stories as `tinygpt generate`
# ------------------------------------------------------------------------------------------------

def test_models_lists_the_run_by_its_name(client, run):
    (m,) = client.models.list().data
    assert m.id == run.name and m.object == "model"
    assert client.models.retrieve(m.id).id == m.id


def test_completions_with_n_and_prompt_lists_equal_generate(client, run, model_name):
    prompts = [PROMPT, "Lily and Ben went to the park."]
    want = generate_cli(run, prompts, 3, 11, 40)
    r = client.completions.create(model=model_name, prompt=prompts, n=3, seed=11, max_tokens=40, **SAMPLING)
    assert r.object == "text_completion" and r.model == model_name and r.id.startswith("cmpl-")
    assert [c.index for c in r.choices] == list(range(6))
    assert [c.text for c in r.choices] == [continuation(s) for s in want]
    assert [c.finish_reason for c in r.choices] == [finish(s) for s in want]
    tok = load_run(run)[1]
    assert r.usage.prompt_tokens == sum(len(encode_prompt(tok, p)) for p in prompts)
    assert r.usage.completion_tokens == sum(len(s["ids"]) for s in want)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streamed_completions_equal_generate_and_end_with_usage(client, run, model_name):
    want = generate_cli(run, [PROMPT], 2, 5, 60)
    stream = client.completions.create(model=model_name, prompt=PROMPT, n=2, seed=5, max_tokens=60, stream=True,
                                       stream_options={"include_usage": True}, **SAMPLING)
    texts, reasons, usage = ["", ""], [None, None], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
            assert not chunk.choices
        for c in chunk.choices:
            texts[c.index] += c.text
            reasons[c.index] = c.finish_reason or reasons[c.index]
    assert texts == [continuation(s) for s in want]
    assert reasons == [finish(s) for s in want]
    assert usage.completion_tokens == sum(len(s["ids"]) for s in want)


def test_chat_is_the_story_so_far_continued(client, run, model_name):
    (want,) = generate_cli(run, [PROMPT], 1, 8, 50)
    r = client.chat.completions.create(model=model_name, messages=[{"role": "system", "content": "ignored"},
                                                                   {"role": "user", "content": PROMPT}],
                                       seed=8, max_tokens=50, **SAMPLING)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    (c,) = r.choices
    assert c.message.role == "assistant" and c.message.content == continuation(want)
    assert c.finish_reason == finish(want)
    # max_completion_tokens is max_tokens' newer name; the stream gives the same reply in deltas
    stream = client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": PROMPT}],
                                            seed=8, max_completion_tokens=50, stream=True, **SAMPLING)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].object == "chat.completion.chunk"
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == continuation(want)
    assert chunks[-1].choices[0].finish_reason == finish(want)


def test_a_conversation_is_flattened_into_one_story(client, run, model_name):
    (want,) = generate_cli(run, ["Tom had a ball. He"], 1, 2, 30)
    msgs = [{"role": "user", "content": "Tom had a ball."}, {"role": "assistant", "content": [{"type": "text",
                                                                                            "text": "He"}]}]
    r = client.chat.completions.create(model=model_name, messages=msgs, seed=2, max_tokens=30, **SAMPLING)
    assert r.choices[0].message.content == continuation(want)


def test_stop_sequences_cut_the_text_streamed_or_not(client, run, model_name):
    (want,) = generate_cli(run, [PROMPT], 1, 21, 80)
    text = continuation(want)
    words = text.split()
    assert len(words) >= 6, text
    stop = " " + words[4]  # a stop sequence that occurs in the story
    cut = text[: text.index(stop)]
    r = client.completions.create(model=model_name, prompt=PROMPT, seed=21, max_tokens=80, stop=[stop, "zzzz"],
                                  **SAMPLING)
    assert r.choices[0].text == cut and r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens < len(want["ids"])
    streamed = client.completions.create(model=model_name, prompt=PROMPT, seed=21, max_tokens=80, stop=stop,
                                         stream=True, **SAMPLING)
    chunks = list(streamed)
    assert "".join(c.choices[0].text for c in chunks) == cut
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_logprobs_are_the_model_s_and_echo_gives_the_prompt_back(client, run, model_name):
    (want,) = generate_cli(run, [PROMPT], 1, 4, 20)
    r = client.completions.create(model=model_name, prompt=PROMPT, seed=4, max_tokens=20, logprobs=3, echo=True,
                                  **SAMPLING)
    (c,) = r.choices
    assert c.text == want["text"]  # the prompt, then the story
    model, tok = load_run(run)
    prompt_ids = encode_prompt(tok, PROMPT)
    ids = prompt_ids + want["ids"]
    with torch.no_grad():
        ref = torch.log_softmax(model(torch.tensor([ids]))[0].float(), -1)
    lp = c.logprobs
    assert len(lp.tokens) == len(ids) - 1  # every token but the start-of-story marker
    assert "".join(lp.tokens) == c.text
    for i, t in enumerate(ids[1:]):
        assert lp.token_logprobs[i] == pytest.approx(float(ref[i, t]), abs=2e-3)
        top = torch.topk(ref[i], 3)
        assert len(lp.top_logprobs[i]) == 3
        assert sorted(lp.top_logprobs[i].values(), reverse=True) == pytest.approx(top.values.tolist(), abs=2e-3)
    assert lp.text_offset[0] == 0 and lp.text_offset[-1] == len(c.text) - len(lp.tokens[-1])


def test_chat_logprobs_carry_bytes_and_alternatives(client, model_name):
    r = client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": PROMPT}], seed=1,
                                       max_tokens=10, logprobs=True, top_logprobs=2, **SAMPLING)
    content = r.choices[0].logprobs.content
    assert "".join(e.token for e in content) == r.choices[0].message.content
    for e in content:
        assert bytes(e.bytes).decode("utf-8", "replace") == e.token and len(e.top_logprobs) == 2
        assert e.logprob <= e.top_logprobs[0].logprob + 1e-6


def test_the_same_seed_gives_the_same_story_whatever_else_runs(client, url, model_name):
    alone = client.completions.create(model=model_name, prompt=PROMPT, seed=77, max_tokens=40, **SAMPLING)
    import concurrent.futures as cf

    def busy(seed):
        return client.completions.create(model=model_name, prompt="The dog", seed=seed, max_tokens=60, **SAMPLING)

    with cf.ThreadPoolExecutor(6) as pool:
        others = [pool.submit(busy, s) for s in range(5)]
        again = pool.submit(lambda: client.completions.create(model=model_name, prompt=PROMPT, seed=77,
                                                              max_tokens=40, **SAMPLING)).result()
        [o.result() for o in others]
    assert again.choices[0].text == alone.choices[0].text
