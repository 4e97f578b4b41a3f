"""The audio actually reaches the model: different clips, different answers."""

from __future__ import annotations


def test_answers_change_with_the_audio_and_not_without(make_backend, make_request, make_clip):
    backend = make_backend()
    # All 100 ms long: only the content differs.
    clips = [make_request(f"c{i}", make_clip(kind, 100, seed=i))
             for i, kind in enumerate(["tone", "noise", "tone", "noise", "silence"])]
    first = backend.predict_batch(clips)
    again = backend.predict_batch(clips)
    assert [p.p_speech for p in first] == [p.p_speech for p in again]          # same audio, same answer
    p_speech = [p.p_speech for p in first]
    assert max(p_speech) - min(p_speech) > 0.03                                # audio moves p_speech


def test_every_audio_token_counts(make_backend, make_request, make_clip):
    # Changing only the last 40 ms of a clip changes the answer: the last token is heard too.
    backend = make_backend()
    base = make_clip("tone", 400, seed=1)
    changed = base.copy()
    changed[-640:] = make_clip("noise", 40, seed=9)
    a, b = backend.predict_batch([make_request("a", base), make_request("b", changed)])
    assert a.n_audio_tokens == b.n_audio_tokens == 10
    assert abs(a.p_speech - b.p_speech) > 1e-4
