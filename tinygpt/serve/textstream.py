"""One choice's text as its tokens arrive: decoded without ever half a UTF-8 character, held back
while it could be the start of a stop sequence, and cut before the first stop sequence to be completed (as generation goes: of "ab" and "xabc",
"ab" in "xab..." stops it first; of several completed by the same token, the one that starts
first)."""

from __future__ import annotations

from tinygpt.tokenizer import Tokenizer


class ChoiceText:
    def __init__(self, tokenizer: Tokenizer, stops: list[str]):
        self.decoder = tokenizer.decoder()
        self.stops = stops
        self.pending = ""  # decoded but held back: it may begin a stop sequence
        self.text = ""  # released so far
        self.tokens = 0  # tokens taken, up to the one that completed a stop sequence
        self.stopped = False  # a stop sequence was found: nothing more is taken

    def add(self, token: int) -> str:
        """Takes one token; returns the text it releases (possibly empty)."""
        if self.stopped:
            return ""
        self.tokens += 1
        return self._release(self.decoder.add([token]), final=False)

    def finish(self) -> str:
        """The tokens ended: releases what was held back."""
        if self.stopped:
            return ""
        return self._release(self.decoder.flush(), final=True)

    def _release(self, chunk: str, final: bool) -> str:
        self.pending += chunk
        cut = self._first_stop()
        if cut is not None:
            out, self.pending, self.stopped = self.pending[:cut], "", True
        else:
            keep = 0 if final else self._held_back()
            out = self.pending[: len(self.pending) - keep]
            self.pending = self.pending[len(self.pending) - keep:]
        self.text += out
        return out

    def _first_stop(self) -> int | None:
        found = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        return min(found) if found else None

    def _held_back(self) -> int:
        """Length of the longest end of the pending text that begins some stop sequence."""
        best = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.pending)), best, -1):
                if self.pending.endswith(s[:k]):
                    best = k
                    break
        return best
