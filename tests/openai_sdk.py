#!/usr/bin/env python3
"""The simulator's OpenAI API as the official `openai` Python SDK sees it.

Driven by tests/sim_openai_sdk.rs against a running `forge sim serve`:

    python3 tests/openai_sdk.py --base-url http://127.0.0.1:PORT/v1

Checks `n`, `stop`, `logprobs`/`top_logprobs`, `echo`, vLLM's 400s for invalid sampling
parameters, the simulator's 400s for what it cannot simulate (`response_format`, `tools`),
and `/tokenize` + `/detokenize` (plain HTTP: the SDK has no client for them). Prints one
line per check and exits non-zero when any fails.
"""

import argparse
import json
import re
import sys
import traceback
import urllib.error
import urllib.request

import openai

PROMPT = "The simulator answers this prompt with words from its small vocabulary"
PINNED = {"ignore_eos": True}  # vLLM's extra field: exactly max_tokens tokens


def words(text):
    """The simulator's generated tokens: one word (with its space) or a full stop each."""
    return re.findall(r" [^ .]+|\.", text)


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def stop_reason(choice):
    """vLLM's extra `stop_reason` field, which the SDK keeps as an extra attribute."""
    return getattr(choice, "stop_reason", None)


class Checks:
    def __init__(self, client, model, root):
        self.c = client
        self.model = model
        self.root = root

    # --- n -------------------------------------------------------------------------------

    def completions_n(self):
        r = self.c.completions.create(
            model=self.model, prompt=PROMPT, n=2, max_tokens=5, extra_body=PINNED
        )
        expect(sorted(ch.index for ch in r.choices) == [0, 1], f"indices {r.choices}")
        expect(all(len(words(ch.text)) == 5 for ch in r.choices), [c.text for c in r.choices])
        expect(r.choices[0].text != r.choices[1].text, "two samples, two texts")
        expect(r.usage.completion_tokens == 10, f"usage sums both: {r.usage}")
        one = self.c.completions.create(
            model=self.model, prompt=PROMPT, max_tokens=5, extra_body=PINNED
        )
        expect(r.usage.prompt_tokens == one.usage.prompt_tokens, "the prompt counts once")
        expect(one.choices[0].text == r.choices[0].text, "choice 0 is the n=1 answer")

    def completions_n_stream(self):
        stream = self.c.completions.create(
            model=self.model, prompt=PROMPT, n=2, max_tokens=4, stream=True,
            stream_options={"include_usage": True}, extra_body=PINNED,
        )
        texts, finishes, usage = {0: "", 1: ""}, {}, None
        for chunk in stream:
            if chunk.usage is not None and not chunk.choices:
                usage = chunk.usage
            for ch in chunk.choices:
                expect(len(chunk.choices) == 1, "one choice per chunk, as vLLM")
                texts[ch.index] += ch.text
                if ch.finish_reason:
                    finishes[ch.index] = ch.finish_reason
        expect(finishes == {0: "length", 1: "length"}, f"finishes {finishes}")
        expect(all(len(words(t)) == 4 for t in texts.values()), texts)
        expect(usage is not None and usage.completion_tokens == 8, f"usage {usage}")

    def chat_n(self):
        r = self.c.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": PROMPT}], n=2,
            max_completion_tokens=6, extra_body=PINNED,
        )
        expect(sorted(ch.index for ch in r.choices) == [0, 1], f"indices {r.choices}")
        expect(all(ch.message.role == "assistant" for ch in r.choices), "roles")
        expect(r.usage.completion_tokens == 12, f"usage {r.usage}")

    def chat_n_stream(self):
        stream = self.c.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": PROMPT}], n=2,
            max_completion_tokens=3, stream=True, stream_options={"include_usage": True},
            extra_body=PINNED,
        )
        roles, texts, finishes, usage = set(), {0: "", 1: ""}, {}, None
        for chunk in stream:
            if not chunk.choices and chunk.usage is not None:
                usage = chunk.usage
            for ch in chunk.choices:
                if ch.delta.role:
                    roles.add(ch.index)
                texts[ch.index] += ch.delta.content or ""
                if ch.finish_reason:
                    finishes[ch.index] = ch.finish_reason
        expect(roles == {0, 1}, f"a role chunk per choice: {roles}")
        expect(finishes == {0: "length", 1: "length"}, f"finishes {finishes}")
        expect(all(len(words(t)) == 3 for t in texts.values()), texts)
        expect(usage is not None and usage.completion_tokens == 6, f"usage {usage}")

    # --- stop ------------------------------------------------------------------------------

    def _stop_case(self):
        """A stop string that occurs in the answer, and what vLLM returns with it."""
        full = self.c.completions.create(
            model=self.model, prompt=PROMPT, max_tokens=30, extra_body=PINNED
        ).choices[0].text
        toks = words(full)
        stop = toks[3]
        for k in range(len(toks)):
            text = "".join(toks[: k + 1])
            if stop in text:
                return stop, text[: text.find(stop)], k + 1
        raise AssertionError("unreachable")

    def completions_stop(self):
        stop, want, tokens = self._stop_case()
        r = self.c.completions.create(
            model=self.model, prompt=PROMPT, max_tokens=30, stop=[stop], extra_body=PINNED
        )
        ch = r.choices[0]
        expect(ch.text == want, f"text {ch.text!r}, want {want!r} (stop {stop!r})")
        expect(stop not in ch.text, "the stop string is not in the text")
        expect(ch.finish_reason == "stop", f"finish_reason {ch.finish_reason}")
        expect(stop_reason(ch) == stop, f"stop_reason {stop_reason(ch)!r}")
        expect(r.usage.completion_tokens == tokens, f"usage {r.usage}, want {tokens}")

    def completions_stop_stream(self):
        stop, want, _ = self._stop_case()
        text, finish = "", None
        for chunk in self.c.completions.create(
            model=self.model, prompt=PROMPT, max_tokens=30, stop=stop, stream=True,
            extra_body=PINNED,
        ):
            for ch in chunk.choices:
                text += ch.text
                finish = ch.finish_reason or finish
        expect(text == want, f"streamed {text!r}, want {want!r}")
        expect(finish == "stop", f"finish_reason {finish}")

    def chat_stop(self):
        msgs = [{"role": "user", "content": PROMPT}]
        full = self.c.chat.completions.create(
            model=self.model, messages=msgs, max_tokens=20, extra_body=PINNED
        ).choices[0].message.content
        stop = words(full)[2]
        r = self.c.chat.completions.create(
            model=self.model, messages=msgs, max_tokens=20, stop=stop, extra_body=PINNED
        )
        ch = r.choices[0]
        expect(ch.finish_reason == "stop", f"finish_reason {ch.finish_reason}")
        expect(stop not in ch.message.content, f"{ch.message.content!r} has {stop!r}")
        expect(full.startswith(ch.message.content), "the text is the answer's prefix")

    # --- logprobs ----------------------------------------------------------------------------

    def completions_logprobs(self):
        r = self.c.completions.create(
            model=self.model, prompt=PROMPT, max_tokens=4, logprobs=3, extra_body=PINNED
        )
        lp = r.choices[0].logprobs
        expect(len(lp.tokens) == 4 and "".join(lp.tokens) == r.choices[0].text, lp.tokens)
        expect(all(x <= 0 for x in lp.token_logprobs), lp.token_logprobs)
        expect(len(lp.text_offset) == 4 and lp.text_offset[0] == 0, lp.text_offset)
        for tok, x, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
            expect(len(top) == 3 and top[tok] == x, f"top {top} for {tok!r}")
            expect(max(top.values()) == x, "the chosen token is the most likely")

    def chat_logprobs(self):
        r = self.c.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": PROMPT}],
            max_tokens=5, logprobs=True, top_logprobs=2, extra_body=PINNED,
        )
        content = r.choices[0].logprobs.content
        expect(len(content) == 5, f"{len(content)} entries")
        expect("".join(c.token for c in content) == r.choices[0].message.content, "tokens")
        for c in content:
            expect(c.logprob <= 0 and c.bytes == list(c.token.encode()), c)
            expect(len(c.top_logprobs) == 2 and c.top_logprobs[0].token == c.token, c)

    def chat_logprobs_stream(self):
        n = 0
        for chunk in self.c.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": PROMPT}],
            max_tokens=3, logprobs=True, stream=True, extra_body=PINNED,
        ):
            for ch in chunk.choices:
                if ch.logprobs is not None:
                    n += len(ch.logprobs.content)
                    expect(all(c.top_logprobs == [] for c in ch.logprobs.content), "k=0")
        expect(n == 3, f"{n} streamed logprobs")

    # --- echo --------------------------------------------------------------------------------

    def completions_echo(self):
        r = self.c.completions.create(
            model=self.model, prompt=PROMPT, max_tokens=3, echo=True, logprobs=1,
            extra_body=PINNED,
        )
        ch = r.choices[0]
        expect(ch.text.startswith(PROMPT) and len(words(ch.text[len(PROMPT):])) == 3, ch.text)
        lp = ch.logprobs
        expect("".join(lp.tokens) == ch.text, "echo logprobs cover prompt and answer")
        expect(lp.token_logprobs[0] is None and lp.top_logprobs[0] is None, "first is null")
        expect(all(x is not None for x in lp.token_logprobs[1:]), lp.token_logprobs)
        only = self.c.completions.create(
            model=self.model, prompt=PROMPT, max_tokens=0, echo=True
        )
        expect(only.choices[0].text == PROMPT, f"max_tokens=0 echoes only: {only.choices}")

    # --- errors ------------------------------------------------------------------------------

    def _bad(self, fragment, **kwargs):
        try:
            self.c.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": "hi"}],
                max_tokens=2, **kwargs,
            )
        except openai.BadRequestError as e:
            expect(e.status_code == 400, e.status_code)
            expect(e.body["type"] == "BadRequestError", e.body)
            expect(fragment in e.body["message"], f"{e.body['message']!r} lacks {fragment!r}")
            return e.body
        raise AssertionError(f"no BadRequestError for {kwargs}")

    def invalid_sampling_is_vllms_400(self):
        body = self._bad("temperature must be non-negative, got -1.0.", temperature=-1)
        expect(body["param"] == "temperature", body)
        self._bad("n must be at least 1, got 0.", n=0)
        try:
            self.c.completions.create(model=self.model, prompt="hi", logprobs=21)
        except openai.BadRequestError as e:
            expect("greater than max allowed: 20" in e.body["message"], e.body)
        else:
            raise AssertionError("logprobs=21 accepted")

    def unsimulated_features_are_refused(self):
        body = self._bad("not supported by the simulator", response_format={"type": "json_object"})
        expect(body["param"] == "response_format", body)
        tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        body = self._bad("not supported by the simulator", tools=[tool])
        expect(body["param"] == "tools", body)

    # --- tokenize ----------------------------------------------------------------------------

    def _post(self, path, body):
        req = urllib.request.Request(
            self.root + path, data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def tokenize_round_trip(self):
        status, t = self._post("/tokenize", {"model": self.model, "prompt": PROMPT})
        expect(status == 200, t)
        expect(t["count"] == len(t["tokens"]) > 0 and t["max_model_len"] > 0, t)
        status, d = self._post("/detokenize", {"model": self.model, "tokens": t["tokens"]})
        expect(status == 200 and d == {"prompt": PROMPT}, d)
        status, c = self._post("/tokenize", {"messages": [{"role": "user", "content": "hi"}]})
        expect(status == 200 and c["count"] == len(c["tokens"]) > 1, c)
        # An id no piece seen so far hashes to (almost surely): a clear 400.
        status, e = self._post("/detokenize", {"tokens": [127999]})
        if status != 200:
            expect(status == 400 and "unknown" in e["error"]["message"], e)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True, help="the server's /v1 URL")
    args = ap.parse_args()
    client = openai.OpenAI(base_url=args.base_url, api_key="EMPTY", max_retries=0, timeout=60)
    model = client.models.list().data[0].id
    root = args.base_url.rstrip("/").removesuffix("/v1")
    checks = Checks(client, model, root)
    names = [n for n in Checks.__dict__ if not n.startswith("_")]
    failed = []
    for name in names:
        try:
            getattr(checks, name)()
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001 - every failure is reported, then the next check runs
            failed.append(name)
            print(f"FAIL {name}\n{traceback.format_exc()}")
    print(f"openai {openai.__version__}: {len(names) - len(failed)} of {len(names)} checks ok")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
