"""`tinygpt serve` refusing what it cannot do: every bad input gets OpenAI's error JSON with the
right status (never a 500), keys are checked, oversized bodies and a full queue are refused, and
the server keeps serving after all of it."""

from __future__ import annotations

import asyncio
import subprocess

import httpx
import openai
import pytest

from serve_helpers import CWD, ENV, cli_args, served

LONG = "The cat sat on the mat and looked at the big red ball. " * 40  # far beyond the 128-token context


@pytest.fixture(scope="module")
def run(serve_run):
    return serve_run


@pytest.fixture(scope="module")
def url(run):
    with served(run, "--dtype", "fp32", "--max-request-bytes", "20000") as u:
        yield u


def assert_error(r: httpx.Response, status: int, param: str | None = None, code: str | None = None):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"], err
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err
    return err


C, CHAT = "/v1/completions", "/v1/chat/completions"
MSG = [{"role": "user", "content": "Once"}]

BAD = [
    (C, {"prompt": "x", "temperature": -0.5}, "temperature"),
    (C, {"prompt": "x", "temperature": "hot"}, "temperature"),
    (C, {"prompt": "x", "top_p": 0}, "top_p"),
    (C, {"prompt": "x", "top_p": 1.5}, "top_p"),
    (C, {"prompt": "x", "n": 0}, "n"),
    (C, {"prompt": "x", "n": 1000}, "n"),
    (C, {"prompt": "x", "max_tokens": -1}, "max_tokens"),
    (C, {"prompt": "x", "max_tokens": 0}, None),
    (C, {"prompt": "x", "max_tokens": 100000}, "max_tokens"),
    (C, {"prompt": "x", "max_tokens": "many"}, "max_tokens"),
    (C, {"prompt": []}, "prompt"),
    (C, {"prompt": 5}, "prompt"),
    (C, {"prompt": [[]]}, "prompt"),
    (C, {"prompt": [1, -2]}, "prompt"),
    (C, {"prompt": [1, 10**6]}, "prompt"),
    (C, {"prompt": LONG}, "prompt"),
    (C, {"prompt": "The end.<|endoftext|>Once"}, "prompt"),
    (C, {"prompt": "x", "logprobs": 6}, "logprobs"),
    (C, {"prompt": "x", "stop": [""]}, "stop"),
    (C, {"prompt": "x", "stop": ["a"] * 17}, "stop"),
    (C, {"prompt": "x", "seed": 2**70}, "seed"),
    (C, {"prompt": "x", "logit_bias": {"5": 10}}, "logit_bias"),
    (C, {"prompt": "x", "best_of": 3}, None),
    (C, {"prompt": "x", "suffix": "y"}, "suffix"),
    (C, {"prompt": "x", "stream": "yes please"}, "stream"),
    (C, {"prompt": "x", "stream_options": {"include_usage": True, "x": 1}}, "x"),
    (C, {"prompt": "x", "tempertaure": 0.5}, "tempertaure"),
    (C, {"prompt": "x", "truncate_prompt_tokens": 500}, "truncate_prompt_tokens"),
    (C, {}, "prompt"),
    (CHAT, {"messages": []}, "messages"),
    (CHAT, {"messages": [{"role": "wizard", "content": "hi"}]}, "messages"),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]}, "messages"),
    (CHAT, {"messages": MSG, "max_tokens": 0}, "max_tokens"),
    (CHAT, {"messages": MSG, "max_completion_tokens": 100000}, "max_completion_tokens"),
    (CHAT, {"messages": MSG, "top_logprobs": 3}, None),
    (CHAT, {"messages": MSG, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    (CHAT, {"messages": MSG, "tools": [{"type": "function", "function": {"name": "f"}}]}, None),
    (CHAT, {"messages": MSG, "response_format": {"type": "json_object"}}, None),
    (CHAT, {"messages": [{"role": "user", "content": LONG}]}, "messages"),
]


@pytest.mark.parametrize("path,body,param", BAD, ids=[f"{p.split('/')[-1]}-{i}" for i, (p, _, _) in enumerate(BAD)])
def test_bad_parameters_get_400_with_the_field_named(url, path, body, param):
    assert_error(httpx.post(url + path, json=body), 400, param)


@pytest.mark.parametrize("content,headers", [
    (b'{"prompt": "x",', {"content-type": "application/json"}),
    (b"[1, 2]", {"content-type": "application/json"}),
    (b"\xff\xfe", {"content-type": "application/json"}),
    (b"prompt=x", {"content-type": "application/x-www-form-urlencoded"}),
])
def test_bodies_that_are_not_json_objects_get_400(url, content, headers):
    assert_error(httpx.post(url + C, content=content, headers=headers), 400)


def test_a_long_prompt_is_cut_to_truncate_prompt_tokens(url):
    r = httpx.post(url + C, json={"prompt": LONG, "truncate_prompt_tokens": 20, "max_tokens": 5})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["prompt_tokens"] == 20


def test_the_openai_client_sees_its_own_exception_types(url):
    client = openai.OpenAI(base_url=url + "/v1", api_key="dummy", max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="story-model", prompt="x", temperature=-1)
    assert e.value.status_code == 400 and e.value.param == "temperature"
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="gpt-5", prompt="x")
    assert e.value.code == "model_not_found"


def test_unknown_models_and_paths_get_404_and_wrong_methods_405(url):
    assert_error(httpx.post(url + C, json={"model": "gpt-5", "prompt": "x"}), 404, "model", "model_not_found")
    assert_error(httpx.post(url + CHAT, json={"model": "gpt-5", "messages": MSG}), 404, "model")
    assert_error(httpx.get(url + "/v1/models/gpt-5"), 404, "model")
    assert_error(httpx.get(url + "/v1/embeddings"), 404)
    assert_error(httpx.get(url + "/static/nothing.js"), 404)
    assert_error(httpx.get(url + C), 405)


def test_oversized_bodies_get_413_whether_announced_or_streamed(url):
    big = {"prompt": "x" * 30000}
    assert_error(httpx.post(url + C, json=big), 413, code="request_too_large")

    def chunks():  # no Content-Length: the limit applies as the body arrives
        yield b'{"prompt": "'
        for _ in range(40):
            yield b"y" * 1000
        yield b'"}'

    assert_error(httpx.post(url + C, content=chunks(), headers={"content-type": "application/json"}), 413)


def test_after_all_the_bad_input_the_server_still_serves(url):
    r = httpx.post(url + C, json={"prompt": "Once", "max_tokens": 5})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1
    metrics = httpx.get(url + "/metrics").text
    assert 'status="500"' not in metrics
    assert 'tinygpt_requests_total{endpoint="/v1/completions",status="400"}' in metrics


def test_keys_are_required_everywhere_but_health_and_the_page(run, tmp_path):
    keyfile = tmp_path / "keys"
    keyfile.write_text("second-key\n\n")
    with served(run, "--api-key", "first-key", "--api-key-file", keyfile) as u:
        assert httpx.get(u + "/health").status_code == 200
        assert httpx.get(u + "/").status_code == 200
        for path in ("/v1/models", "/metrics"):
            assert_error(httpx.get(u + path), 401, code="invalid_api_key")
        assert_error(httpx.post(u + C, json={"prompt": "x"}, headers={"Authorization": "Bearer wrong"}), 401)
        assert_error(httpx.post(u + C, json={"prompt": "x"}, headers={"Authorization": "first-key"}), 401)
        for key in ("first-key", "second-key"):
            client = openai.OpenAI(base_url=u + "/v1", api_key=key, max_retries=0)
            assert client.completions.create(model=run.name, prompt="Once", max_tokens=3).choices
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=u + "/v1", api_key="nope", max_retries=0).models.list()


def test_a_full_queue_gets_429_with_retry_after(run):
    """One row and one place in the queue: of 16 requests at once, the ones that find both taken
    are refused, the rest are served in full."""
    with served(run, "--max-batch", "1", "--max-queue", "1") as u:
        async def flood():
            client = openai.AsyncOpenAI(base_url=u + "/v1", api_key="dummy", max_retries=0)
            calls = [client.completions.create(model=run.name, prompt="Once", max_tokens=100, seed=i,
                                               extra_body={"ignore_eos": True}) for i in range(16)]
            return await asyncio.gather(*calls, return_exceptions=True)

        results = asyncio.run(flood())
        refused = [r for r in results if isinstance(r, Exception)]
        served_ = [r for r in results if not isinstance(r, Exception)]
        assert refused and served_, results
        for e in refused:
            assert isinstance(e, openai.RateLimitError), e
            assert e.code == "queue_full" and e.response.headers["retry-after"] == "1"
        assert all(r.usage.completion_tokens == 100 for r in served_)
        # once they are gone, the queue takes requests again
        assert httpx.post(u + C, json={"prompt": "Once", "max_tokens": 3}, timeout=30).status_code == 200


@pytest.mark.parametrize("args,message", [
    (["--run", "/nonexistent/run"], "/nonexistent/run"),
    (["--run", ".", "--port", "70000"], "--port must be at most 65535"),
    (["--run", ".", "--max-batch", "0"], "--max-batch must be >= 1"),
    (["--run", ".", "--api-key", ""], "an API key cannot be empty"),
])
def test_bad_flags_are_one_line_errors(args, message):
    r = subprocess.run(cli_args("serve", *args), capture_output=True, text=True, env=ENV, cwd=CWD, timeout=60)
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
