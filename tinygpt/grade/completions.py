"""A run's completions of the story beginnings: each beginning `samples` times, decoded in batches
by the KV-cache decoder, seeded so a rerun writes the same stories."""

from __future__ import annotations

from dataclasses import dataclass, field

# The settings the grade is defined with: plain sampling at temperature 1, so a grade measures the
# model itself, not a sampler tuned to hide its faults.
DEFAULT_SAMPLES = 10
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0
DEFAULT_MAX_NEW_TOKENS = 200


@dataclass
class Completion:
    beginning_index: int
    sample: int
    seed: int
    beginning: str
    story: str                 # the beginning followed by the model's text
    ids: list[int] = field(default_factory=list)  # the model's tokens
    finish_reason: str = ""

    @property
    def cut(self) -> int:
        return len(self.beginning)


def complete(model, tokenizer, beginnings: list[str], *, samples: int = DEFAULT_SAMPLES,
             temperature: float = DEFAULT_TEMPERATURE, top_p: float = DEFAULT_TOP_P,
             max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, seed: int = 0, batch_size: int = 64,
             dtype: str = "auto", progress: bool = False) -> list[Completion]:
    """Beginning b's sample j is sequence b * samples + j, drawn with seed + that index."""
    from tinygpt.generate import SamplingSettings, encode_prompt, generate_ids

    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not beginnings:
        raise ValueError("no story beginnings to complete")
    prompts = [encode_prompt(tokenizer, b) for b in beginnings for _ in range(samples)]
    settings = SamplingSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    with _bar(len(prompts), progress) as bar:
        gens = generate_ids(model, prompts, settings, eot=tokenizer.eot_token, seed=seed, batch_size=batch_size,
                            dtype=dtype, on_finish=lambda i, g: bar.update(1))
    out = []
    for i, g in enumerate(gens):
        b = beginnings[i // samples]
        out.append(Completion(i // samples, i % samples, seed + i, b, b + tokenizer.decode(g.ids), list(g.ids),
                              g.finish_reason))
    return out


def _bar(total: int, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="completions", unit="story", disable=not progress, leave=False)
