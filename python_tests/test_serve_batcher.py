"""Continuous batching (tinygpt.serve.batcher): requests that join and leave between decode steps
get exactly the tokens that `generate_ids` gives each of them alone with the same seed."""

import torch

from tinygpt.generate import SamplingSettings, generate_ids
from tinygpt.model import GPT, get_preset
from tinygpt.serve.batcher import Batcher, Request

EOT = 12  # a token these random weights do draw, so some requests end on it


def tiny_model():
    torch.manual_seed(0)
    cfg = get_preset("260k")
    cfg.vocab_size, cfg.max_seq_len = 64, 48
    return GPT(cfg).eval()


def alone(model, req):
    (g,) = generate_ids(model, [req.prompt], req.settings, eot=EOT, seed=req.seed, dtype="fp32")
    return g.ids, g.finish_reason


def make_requests():
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(7):
        prompt = torch.randint(4, 64, (int(torch.randint(1, 12, (1,), generator=g)),), generator=g).tolist()
        s = SamplingSettings(max_new_tokens=[5, 20, 40, 1, 12, 45, 8][i],
                             temperature=[0.8, 1.2, 0.0, 1.0, 0.5, 1.0, 2.0][i],
                             top_k=[0, 10, 0, 0, 5, 0, 0][i], top_p=[0.95, 1.0, 1.0, 0.9, 1.0, 0.5, 1.0][i])
        out.append(Request(prompt, s, seed=100 + i))
    return out


def test_requests_joining_and_leaving_match_generating_each_alone():
    model = tiny_model()
    reqs = make_requests()
    b = Batcher(model, max_batch=3, eot=EOT, dtype="fp32")
    pending = list(reqs)
    finished = []
    for r in reqs:
        r.on_finish = finished.append
    steps = 0
    while pending or b.busy:
        if pending and steps % 2 == 0:  # requests arrive while others run
            b.submit(pending.pop(0))
        b.run_step()
        steps += 1
        assert len(b.rows) <= 3
    assert len(finished) == len(reqs)
    for r in reqs:
        ids, reason = alone(model, r)
        assert r.ids == ids, r
        assert r.finish_reason == reason


def test_a_cancelled_request_frees_its_row_at_the_next_step():
    model = tiny_model()
    b = Batcher(model, max_batch=1, eot=None, dtype="fp32")
    long = Request([5, 6], SamplingSettings(max_new_tokens=40), seed=1)
    nxt = Request([7], SamplingSettings(max_new_tokens=3, temperature=0.0), seed=2)
    b.submit(long)
    b.submit(nxt)
    for _ in range(3):
        b.run_step()
    assert len(long.ids) == 3 and not nxt.ids  # one row: the second waits
    long.cancelled = True
    while b.busy:
        b.run_step()
    assert long.finish_reason == "cancelled" and len(long.ids) == 3
    assert nxt.ids == alone(model, nxt)[0] and nxt.finish_reason == "max_new_tokens"
