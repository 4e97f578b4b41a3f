"""Turning a batch of model inputs into answers: logits mode and generate mode.

logits (default): one forward pass; only the last position goes through the LM head (left
padding puts every row's next token there). p_speech = P(SPEECH answer) / (P(SPEECH answer)
+ P(NONSPEECH answer)), where each answer's probability sums the first tokens of every
spelling of it the tokenizer has: with and without a leading space, upper, lower and title
case (option letters: upper case only). If a first token would count for both answers the
prompt is refused: p_speech would then mean nothing.

generate: greedy decoding of new tokens only, decoded whole, labelled by the strict parser;
p_speech there comes from the first decoding step, the same quantity as in logits mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from qsm_eval.backends.base import BackendError
from qsm_eval.backends.audio_llm.encoder import embed_inputs
from qsm_eval.backends.audio_llm.inputs import BatchInputs
from qsm_eval.backends.audio_llm.parsing import parse_answer
from qsm_eval.backends.audio_llm.prompts import Prompt

SCORING_MODES = ("logits", "generate")


@dataclass(frozen=True)
class AnswerTokens:
    """First-token ids of every spelling of each answer."""

    speech: frozenset[int]
    nonspeech: frozenset[int]


@dataclass
class Scored:
    """One row's answer before it becomes a Prediction."""

    label: str
    p_speech: float | None
    raw_output: str
    parse_status: str


def spellings(answer: str) -> list[str]:
    """The forms a model may start its answer with.

    An option letter keeps its upper case only: a lower-case "a" at the start of an answer
    is far more often the article than option A.
    """
    if len(answer) == 1 and answer.isalpha():
        cases = [answer.upper()]
    else:
        cases = list(dict.fromkeys([answer, answer.upper(), answer.lower(), answer.capitalize()]))
    return [prefix + form for form in cases for prefix in ("", " ")]


def answer_tokens(tokenizer, prompt: Prompt) -> AnswerTokens:
    """The token ids p_speech sums over; refuses answers whose first tokens collide."""
    def first_ids(answer: str) -> frozenset[int]:
        ids = set()
        for form in spellings(answer):
            encoded = tokenizer.encode(form, add_special_tokens=False)
            if encoded:
                ids.add(encoded[0])
        return frozenset(ids)

    speech, nonspeech = first_ids(prompt.speech_answer), first_ids(prompt.nonspeech_answer)
    shared = speech & nonspeech
    if shared:
        tokens = ", ".join(repr(tokenizer.convert_ids_to_tokens(i)) for i in sorted(shared))
        raise BackendError(
            f"prompt {prompt.prompt_id}: answers {prompt.speech_answer!r} and {prompt.nonspeech_answer!r} "
            f"start with the same token ({tokens}), so their logits cannot tell them apart; "
            f"choose answer words that begin differently or use --qsm-scoring generate")
    return AnswerTokens(speech=speech, nonspeech=nonspeech)


def last_hidden_states(model, batch: BatchInputs, *, fast_encoder: bool):
    """The final hidden state at the last position of every row: one forward pass, no cache."""
    if fast_encoder:
        embeds = embed_inputs(model, batch.input_ids, batch.input_features, batch.feature_attention_mask)
        out = model.model(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                          position_ids=batch.position_ids, use_cache=False)
    else:
        out = model.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                          position_ids=batch.position_ids, input_features=batch.input_features,
                          feature_attention_mask=batch.feature_attention_mask, use_cache=False)
    return out.last_hidden_state[:, -1, :]


def renormalise(speech, nonspeech):
    """(p_speech, answer mass) from the probability each answer's first tokens hold.

    The one definition of p_speech over the answers, for local logits (tensors, per row)
    and for a server's log-probabilities (floats) alike.
    """
    mass = speech + nonspeech
    return speech / mass, mass


def p_speech_from_logits(logits, answers: AnswerTokens):
    """(p_speech, answer mass) per row from next-token logits (batch, vocab)."""
    import torch

    probs = torch.softmax(logits.float(), dim=-1)
    p_speech, mass = renormalise(probs[:, sorted(answers.speech)].sum(-1),
                                 probs[:, sorted(answers.nonspeech)].sum(-1))
    return p_speech.tolist(), mass.tolist()


def score_logits(model, tokenizer, batch: BatchInputs, answers: AnswerTokens, *,
                 fast_encoder: bool) -> list[Scored]:
    logits = model.lm_head(last_hidden_states(model, batch, fast_encoder=fast_encoder))
    p_speech, mass = p_speech_from_logits(logits, answers)
    results = []
    for p, m, token in zip(p_speech, mass, logits.argmax(-1).tolist()):
        label = "SPEECH" if p >= 0.5 else "NONSPEECH"
        # The top answer, how much probability the two answers hold, and the model's own top token.
        raw = f"{label} (answer mass {m:.4f}; top token {tokenizer.decode([token])!r})"
        results.append(Scored(label=label, p_speech=p, raw_output=raw, parse_status="logits"))
    return results


def score_generate(model, tokenizer, batch: BatchInputs, prompt: Prompt, answers: AnswerTokens | None,
                   *, fast_encoder: bool, max_new_tokens: int) -> list[Scored]:
    """Greedy answers, new tokens only, labelled by the parser.

    p_speech comes from the first decoding step's logits (the same quantity logits mode
    computes), or stays None when the prompt's answers share a first token.
    """
    # Audio goes in as embeddings on both paths: transformers' generate on raw input_features
    # mistakes a batch whose clips all have one audio token for its legacy unexpanded format.
    embeds = embed_inputs(model, batch.input_ids, batch.input_features, batch.feature_attention_mask,
                          fast=fast_encoder)
    out = model.generate(input_ids=batch.input_ids, inputs_embeds=embeds, attention_mask=batch.attention_mask,
                         max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                         return_dict_in_generate=True, output_logits=True)
    new_tokens = out.sequences[:, batch.input_ids.shape[1]:]
    n = len(new_tokens)
    p_speech = p_speech_from_logits(out.logits[0], answers)[0] if answers else [None] * n
    results = []
    for row, p in zip(new_tokens, p_speech):
        text = tokenizer.decode(row, skip_special_tokens=True)
        label, status = parse_answer(text, prompt)
        results.append(Scored(label=label, p_speech=p, raw_output=text, parse_status=status))
    return results
