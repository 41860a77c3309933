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


def test_penalties_apply_per_row_as_generate_applies_them():
    model = tiny_model()
    reqs = [Request([EOT, 5, 6, 5], SamplingSettings(max_new_tokens=30, temperature=1.0, repetition_penalty=r,
                                                    frequency_penalty=f, presence_penalty=p), seed=40 + i)
            for i, (r, f, p) in enumerate([(1.3, 0, 0), (1.0, 0.7, 0), (1.0, 0, 1.1), (1.0, 0, 0), (2.0, 0.5, 0.5)])]
    b = Batcher(model, max_batch=5, eot=EOT, dtype="fp32")
    for r in reqs:
        b.submit(r)
    while b.busy:
        b.run_step()
    for r in reqs:
        assert (r.ids, r.finish_reason) == alone(model, r), r.settings


def test_logprobs_are_the_raw_model_s_and_the_top_alternatives_its_most_likely():
    model = tiny_model()
    got = []
    req = Request([3, 9, 4], SamplingSettings(max_new_tokens=12, temperature=1.5, top_p=0.8), seed=7, logprobs=4,
                  on_token=lambda r, t, lp: got.append((t, lp)))
    b = Batcher(model, max_batch=2, eot=EOT, dtype="fp32")
    b.submit(req)
    while b.busy:
        b.run_step()
    assert [t for t, _ in got] == req.ids and req.ids == alone(model, req)[0]
    with torch.no_grad():
        ref = torch.log_softmax(model(torch.tensor([req.prompt + req.ids]))[0], -1)
    for i, (t, lp) in enumerate(got):
        row = ref[len(req.prompt) - 1 + i]
        assert abs(lp.logprob - float(row[t])) < 1e-4
        top = torch.topk(row, 4)
        assert [a for a, _ in lp.top] == top.indices.tolist()
        assert torch.allclose(torch.tensor([v for _, v in lp.top]), top.values, atol=1e-4)


def test_ignore_eot_goes_on_past_end_of_text():
    model = tiny_model()
    s = SamplingSettings(max_new_tokens=40, temperature=2.0)
    seed = next(i for i in range(200) if alone(model, Request([5], s, seed=i))[1] == "eot")
    stops = Request([5], s, seed=seed)
    goes_on = Request([5], s, seed=seed, ignore_eot=True)
    b = Batcher(model, max_batch=2, eot=EOT, dtype="fp32")
    b.submit(stops)
    b.submit(goes_on)
    while b.busy:
        b.run_step()
    assert stops.finish_reason == "eot" and len(goes_on.ids) == 40
    assert goes_on.ids[: len(stops.ids)] == stops.ids and goes_on.ids[len(stops.ids)] == EOT


def test_a_step_over_the_leading_rows_equals_the_whole_batch_s_step():
    from tinygpt.decode import Decoder

    model = tiny_model()
    whole, part = Decoder(model, 4, dtype="fp32"), Decoder(model, 4, dtype="fp32")
    prompts = torch.tensor([[3, 4, 5], [6, 7, 8], [9, 10, 11], [1, 2, 3]])
    for d in (whole, part):
        d.prefill([0, 1, 2, 3], prompts)
    tokens = torch.tensor([13, 14, 15, 16])
    active = torch.tensor([True, False, True, False])
    want = whole.step(tokens, active)
    got = part.step(tokens[:3], active[:3], rows=3)
    assert got.shape == (3, model.config.vocab_size)
    assert torch.allclose(got[[0, 2]], want[[0, 2]], atol=1e-6)
    assert part.lengths.tolist() == whole.lengths.tolist() == [4, 3, 4, 3]


def test_ids_past_the_vocab_limit_are_never_drawn():
    model = tiny_model()
    b = Batcher(model, max_batch=4, eot=None, dtype="fp32", vocab_limit=20)
    reqs = [Request([30, 40], SamplingSettings(max_new_tokens=30, temperature=3.0, top_p=1.0), seed=s) for s in range(4)]
    for r in reqs:
        b.submit(r)
    while b.busy:
        b.run_step()
    drawn = [t for r in reqs for t in r.ids]
    assert len(drawn) == 120 and max(drawn) < 20
