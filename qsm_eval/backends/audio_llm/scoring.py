"""Turning a batch of model inputs into answers: logits mode and generate mode.

logits (default): p_speech = P(SPEECH answer) / (P(SPEECH answer) + P(NONSPEECH answer)),
where each answer's probability is that of its whole token sequence, summed over the
spellings the tokenizer gives it (as written, upper, lower and title case, each with and
without a leading space; option letters: upper case only). On the real Qwen2 vocabulary
SPEECH is S|PE|ECH and NONSPEECH N|ONS|PE|ECH: scoring first tokens only would score "starts
with S" against "starts with N", so SILENCE and SOUND would count as SPEECH. One forward
pass over the prompt keeps its key/value cache; each multi-token spelling then costs one
short forward of its first tokens over that cache (which is cut back afterwards).

The answer mass, P(either answer), says whether the model answered the question at all;
it is returned with every row (Prediction.answer_mass) and a low one is an alarm.

Overlapping spellings: if a SPEECH spelling is a token prefix of a NONSPEECH one (or the
other way round) their probabilities would overlap. A spelling the prompt did not ask for
(another case, a leading space) that overlaps is dropped from its side; two spellings the
prompt asks for that overlap make the prompt unusable for logits scoring, and it is refused.

generate: greedy decoding of new tokens only, decoded whole, labelled by the strict parser;
p_speech there is the same sequence score as in logits mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qsm_eval.backends.base import BackendError
from qsm_eval.backends.audio_llm.parsing import parse_answer
from qsm_eval.backends.audio_llm.prompts import Prompt

SCORING_MODES = ("logits", "generate")
# Below this answer mass the two answers are not what the model would say: an alarm.
LOW_ANSWER_MASS = 0.5


def spellings(answer: str) -> list[str]:
    """The forms a model may give its answer in, the prompt's own first.

    An option letter keeps its upper case only: a lower-case "a" at the start of an answer
    is far more often the article than option A.
    """
    if len(answer) == 1 and answer.isalpha():
        cases = [answer.upper()]
    else:
        cases = list(dict.fromkeys([answer, answer.upper(), answer.lower(), answer.capitalize()]))
    return [prefix + form for form in cases for prefix in ("", " ")]


@dataclass(frozen=True)
class AnswerSequences:
    """Token sequences of every kept spelling of each answer."""

    speech: tuple[tuple[int, ...], ...]
    nonspeech: tuple[tuple[int, ...], ...]
    speech_forms: tuple[str, ...] = ()
    nonspeech_forms: tuple[str, ...] = ()
    dropped: tuple[str, ...] = field(default=())    # spellings left out because they overlap

    def describe(self) -> dict:
        return {"SPEECH": dict(zip(self.speech_forms, map(list, self.speech))),
                "NONSPEECH": dict(zip(self.nonspeech_forms, map(list, self.nonspeech))),
                "dropped_overlapping": list(self.dropped)}


def _overlap(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """One sequence is a prefix of the other: P(a) would include P(b) or the reverse."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def answer_sequences(tokenizer, prompt: Prompt) -> AnswerSequences:
    """The sequences p_speech sums over; refuses the prompt when its own answers overlap."""
    def encoded(answer: str) -> dict[str, tuple[int, ...]]:
        forms = {form: tuple(tokenizer.encode(form, add_special_tokens=False)) for form in spellings(answer)}
        return {form: ids for form, ids in forms.items() if ids}

    speech, nonspeech = encoded(prompt.speech_answer), encoded(prompt.nonspeech_answer)
    requested = {prompt.speech_answer, prompt.nonspeech_answer}
    dropped: set[str] = set()
    for s_form, s_ids in speech.items():
        for n_form, n_ids in nonspeech.items():
            if not _overlap(s_ids, n_ids):
                continue
            if s_form in requested and n_form in requested:
                shared = tokenizer.convert_ids_to_tokens(list(s_ids[:min(len(s_ids), len(n_ids))]))
                raise BackendError(
                    f"prompt {prompt.prompt_id}: the answers {prompt.speech_answer!r} and "
                    f"{prompt.nonspeech_answer!r} share the tokens {shared}, one answer's sequence "
                    f"begins the other's, so their probabilities cannot be told apart; choose answer "
                    f"words that begin differently or use --qsm-scoring generate")
            dropped |= {s_form, n_form} - requested
    kept = [_kept(side, dropped) for side in (speech, nonspeech)]
    return AnswerSequences(speech=tuple(kept[0].values()), nonspeech=tuple(kept[1].values()),
                           speech_forms=tuple(kept[0]), nonspeech_forms=tuple(kept[1]),
                           dropped=tuple(sorted(dropped)))


def _kept(side: dict[str, tuple[int, ...]], dropped: set[str]) -> dict[str, tuple[int, ...]]:
    """One side without dropped forms, duplicates, or sequences another kept one already begins."""
    kept: dict[str, tuple[int, ...]] = {}
    for form, ids in sorted(side.items(), key=lambda item: len(item[1])):
        if form in dropped or any(ids[:len(k)] == k for k in kept.values()):
            continue
        kept[form] = ids
    return dict(sorted(kept.items(), key=lambda item: list(side).index(item[0])))


@dataclass(frozen=True)
class AnswerTokens:
    """First-token ids of each answer's kept spellings: for servers that give only the
    first step's log-probabilities (the openai backend). Local models score whole answers."""

    speech: frozenset[int]
    nonspeech: frozenset[int]


def answer_tokens(tokenizer, prompt: Prompt) -> AnswerTokens:
    """First tokens of every spelling, with the overlap rule applied to first tokens: a shared
    first token reached only through an unrequested spelling (another case, a leading space)
    is dropped from both sides; shared by the spellings the prompt asks for, it refuses."""
    def firsts(answer: str) -> dict[str, int]:
        forms = {form: tokenizer.encode(form, add_special_tokens=False) for form in spellings(answer)}
        return {form: ids[0] for form, ids in forms.items() if ids}

    speech, nonspeech = firsts(prompt.speech_answer), firsts(prompt.nonspeech_answer)
    asked_speech, asked_nonspeech = speech[prompt.speech_answer], nonspeech[prompt.nonspeech_answer]
    if asked_speech == asked_nonspeech:
        raise BackendError(
            f"prompt {prompt.prompt_id}: answers {prompt.speech_answer!r} and {prompt.nonspeech_answer!r} "
            f"start with the same token ({tokenizer.convert_ids_to_tokens(asked_speech)!r}), so first-token "
            f"scores cannot tell them apart; choose answer words that begin differently or use "
            f"--qsm-scoring generate")
    shared = set(speech.values()) & set(nonspeech.values())
    # The asked-for first tokens stay on their side; other shared ones leave both sides.
    return AnswerTokens(speech=frozenset({t for t in speech.values() if t not in shared} | {asked_speech}),
                        nonspeech=frozenset({t for t in nonspeech.values() if t not in shared} | {asked_nonspeech}))


def renormalise(speech, nonspeech):
    """(p_speech, answer mass) from the probability each answer holds: the one definition of
    p_speech over the two answers, for tensors (per row) and for a server's floats alike."""
    mass = speech + nonspeech
    return speech / mass, mass


@dataclass
class Prefill:
    """The prompt's forward pass: next-token log-probabilities and what continues from it."""

    model: object
    log_probs: object          # (batch, vocab) float32, at every row's last position
    cache: object              # the key/value cache of the prompt
    attention_mask: object     # (batch, seq)
    next_positions: object     # (batch,) position id of the token after the prompt

    def continuation_log_probs(self, tokens: tuple[int, ...]):
        """(batch, len(tokens), vocab) log-probabilities after each of ``tokens``, every row.

        The tokens run over the cached prompt; the cache is cut back to the prompt after.
        """
        import torch

        batch = self.attention_mask.shape[0]
        device = self.attention_mask.device
        ids = torch.tensor(tokens, device=device).expand(batch, -1)
        steps = torch.arange(len(tokens), device=device)
        mask = torch.cat([self.attention_mask, torch.ones_like(ids)], dim=-1)
        try:
            out = self.model.model(input_ids=ids, attention_mask=mask, cache=self.cache,
                                   position_ids=self.next_positions[:, None] + steps, use_cache=True)
            return torch.log_softmax(self.model.lm_head(out.last_hidden_state).float(), dim=-1)
        finally:
            self.cache.crop(-len(tokens))


def prefill(model, forward: dict, attention_mask, position_ids) -> Prefill:
    """One forward pass over the prompts (``forward``: ids or embeddings and audio inputs)."""
    import torch

    out = model.model(**forward, attention_mask=attention_mask, position_ids=position_ids, use_cache=True)
    last = out.last_hidden_state[:, -1, :]
    return Prefill(model=model, log_probs=torch.log_softmax(model.lm_head(last).float(), dim=-1),
                   cache=_returned_cache(out), attention_mask=attention_mask,
                   next_positions=position_ids[:, -1] + 1)


def sequence_log_probs(state: Prefill, sequences: tuple[tuple[int, ...], ...]):
    """(batch, len(sequences)) log P(sequence | prompt) for each row."""
    import torch

    columns = []
    for sequence in sequences:
        total = state.log_probs[:, sequence[0]]
        if len(sequence) > 1:
            # Feeding all but the last token gives the distributions of tokens 2..k.
            later = state.continuation_log_probs(sequence[:-1])
            index = torch.tensor(sequence[1:], device=later.device)
            total = total + later.gather(-1, index.expand(len(later), -1).unsqueeze(-1)).squeeze(-1).sum(-1)
        columns.append(total)
    return torch.stack(columns, dim=-1)


def p_speech_and_mass(state: Prefill, answers: AnswerSequences) -> tuple[list[float], list[float]]:
    """(p_speech, answer mass) per row, computed in log space so neither underflows."""
    import torch

    speech = torch.logsumexp(sequence_log_probs(state, answers.speech), dim=-1)
    nonspeech = torch.logsumexp(sequence_log_probs(state, answers.nonspeech), dim=-1)
    return torch.sigmoid(speech - nonspeech).tolist(), torch.logaddexp(speech, nonspeech).exp().tolist()


@dataclass
class Scored:
    """One row's answer before it becomes a Prediction."""

    label: str
    p_speech: float | None
    raw_output: str
    parse_status: str
    answer_mass: float | None = None


def renormalised_answer(p_speech: float, mass: float, top_text: str) -> Scored:
    """The logits-mode answer of one row: the label of the larger answer probability."""
    label = "SPEECH" if p_speech >= 0.5 else "NONSPEECH"
    alarm = "; LOW ANSWER MASS" if mass < LOW_ANSWER_MASS else ""
    raw = f"{label} (answer mass {mass:.4f}{alarm}; top token {top_text!r})"
    return Scored(label=label, p_speech=p_speech, raw_output=raw, parse_status="logits", answer_mass=mass)


def score_logits(state: Prefill, tokenizer, answers: AnswerSequences) -> list[Scored]:
    p_speech, mass = p_speech_and_mass(state, answers)
    top = state.log_probs.argmax(-1).tolist()
    return [renormalised_answer(p, m, tokenizer.decode([t])) for p, m, t in zip(p_speech, mass, top)]


def score_generate(model, tokenizer, generate_inputs: dict, prompt_length: int, prompt: Prompt,
                   scored: list[tuple[float, float]] | None, *, max_new_tokens: int) -> list[Scored]:
    """Greedy answers, new tokens only, labelled by the parser.

    ``scored`` holds each row's (p_speech, mass) from the sequence scorer, or is None when
    the prompt's answers overlap (generate mode still serves such a prompt, without p_speech).
    """
    out = model.generate(**generate_inputs, max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id)
    sequences = out.sequences if hasattr(out, "sequences") else out
    new_tokens = sequences[:, prompt_length:]
    results = []
    for i, row in enumerate(new_tokens):
        text = tokenizer.decode(row, skip_special_tokens=True)
        label, status = parse_answer(text, prompt)
        p, mass = scored[i] if scored else (None, None)
        results.append(Scored(label=label, p_speech=p, raw_output=text, parse_status=status, answer_mass=mass))
    return results


def _returned_cache(out):
    """The key/value cache a forward returned (``cache``; ``past_key_values`` before 5.x renamed it)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values
