"""The eval suite: one case per segment of every configured segment set.

Run it with `pytest evals` (see README.md). Each case asks the session's model for its
answer and passes when the answer is right; a wrong answer is a MISS (shown, counted,
not a failure unless --qsm-strict); a case fails only when no answer could be had.
"""


def test_speech_detection(qsm_case):
    qsm_case.check()
