"""The audio datasets' files: checksums, sources, licences and where each is found
(``ostinato data where|verify|download``)."""
from __future__ import annotations

from pathlib import Path

from ostinato.core.data import DatasetSpec, FileSpec

SAMPLES = Path(__file__).resolve().parents[1] / "samples"

_VB_URL = "https://raw.githubusercontent.com/huynguyenqc/huynguyenqc.github.io/efc18c821f7bcbb73632612c7fe6204483d250d5/assets/audios/demo_samples"
_VB = {
    "p232_005": ("f9e7c798b35f2392129ca753e11195d12b9d2360ec79c149bbb3375c6cce1b42", "05e402757500dc7e9817d58f0234cf121f770f2f7b5fc801b7b71c4d76ba3a67"),
    "p232_126": ("64e80bed42bc375a5f43faad833457169332229fefaf852d4525367fe1bea4c2", "3d3245b08603e25b44701bfc9b07e65014fae76eb3ef6b4804f9dcf494c83641"),
    "p232_182": ("56407f539469e225f69ab1c2179a7e7f2a996db84d641209157f4893762fda2f", "4b03fbed3a788931185a6c96fbd6460c8fa3b4017df8fc6c99fd885b4b9b3e69"),
    "p232_261": ("ef8b243c269d2af5e5c540ff5749e84176c3f7a8d0978ab59b60ad711af57518", "ba3aa2a88b70c5bbc6d92eb931b3577cb79539dd23ec5371643b7f444e8bb4e0"),
    "p257_033": ("7dd716c303a4c3322012da40df07426a70e39e419122d37004f41e10139538c6", "42adcf16226dc2d3eb9ba0b2394a4b751f720fe1278632315d32cda6353b8113"),
    "p257_179": ("aad7a7833527dea7fed680d3cdff5689db86357b428fde4f2827d2f3de7bae2f", "ae11815fc56bdf3ca141c408755ca45eb896cee1e8aaef0a3d5639da7aa4beda"),
}
_VB_SIZE = {"p232_005": 195844, "p232_126": 63844, "p232_182": 76644, "p232_261": 98244, "p257_033": 52644, "p257_179": 58244}
_LIBRI_URL = "https://raw.githubusercontent.com/librosa/data/450cdd8a002c98e7bdbfebb309fc1ed024001f77/audio"
_LIBRI = {
    "198-209-0000": "0473ba9613befa1026db5e254546f105aeffba8366b5468fc5e8d474d844ca1d",
    "3436-172162-0000": "780e482b52f2c8a500356babf60178ce005449cc171a8537eb3ef2961eb3e855",
    "5703-47212-0000": "a284612b46af0535f7e1873758c4387bb8369f6dbbe192ffdec1f171108f98dd",
}
_LIBRI_SIZE = {"198-209-0000": 74044, "3436-172162-0000": 84298, "5703-47212-0000": 82670}
_ALSA = {
    "Front_Center": "0d61518bcd3f13b0c709a5298e939caf698b80d31d71d50475365ee0e5536cc9",
    "Front_Left": "9f97e8458785da2f0aa0ec60bf9cc81520cbf80a4683e83eca9cb5f2958e9fef",
    "Front_Right": "1fdea4d7003f1f7d3e48d3521aaab0a112c4ac570b02ddf1813abacac3070f6f",
    "Rear_Center": "9343207e3298813fdc4d26b7948e15a38533c37a9f232c3eff809b565398b330",
    "Rear_Left": "1679e0557701864d55b742a0abd3fe5f50d95b1bfcb55ffad4b597dcc7e3c7b8",
    "Rear_Right": "12828d125f692faa75c7445d52125dcc2c36f82c4f7a3ef49b8ae6afd74ada9d",
    "Side_Left": "03dc7c641d7825417d2a261831715e945e95d87343fb037db910e7ce4f87a2a1",
    "Side_Right": "ecdd0329945f355960796a56f8126d5080ed93fdd2437c7eaddbbbd56137d7e9",
}

DATASETS = [
    DatasetSpec(
        name="voicebank_demand_test", domain="audio",
        files=tuple(
            FileSpec(f"speech/voicebank_demand_test/{kind}/{n}.wav", sha, f"{_VB_URL}/{kind}/{n}.wav", _VB_SIZE[n])
            for n, shas in _VB.items() for kind, sha in zip(("clean", "noisy"), shas)
        ),
        source="VoiceBank+DEMAND test set (Valentini-Botinhao 2017, doi:10.7488/ds/2117), 6 pairs from a public demo page",
        licence="CC BY 4.0", description="6 noisy/clean 16 kHz pairs; p232_005, p232_126, p257_033 are shipped",
        shipped=SAMPLES,
    ),
    DatasetSpec(
        name="librispeech_librosa", domain="audio",
        files=tuple(FileSpec(f"speech/librispeech_librosa/{n}.ogg", sha, f"{_LIBRI_URL}/{n}.ogg", _LIBRI_SIZE[n]) for n, sha in _LIBRI.items()),
        source="LibriSpeech (OpenSLR 12) utterances from github:librosa/data", licence="CC BY 4.0",
        description="3 clean read-speech utterances, Ogg Vorbis 22.05 kHz (resampled to 16 kHz by the recipes)",
    ),
    DatasetSpec(
        name="alsa_voice", domain="audio",
        files=tuple(FileSpec(f"speech/alsa_voice/{n}.wav", sha) for n, sha in _ALSA.items()),
        source="Debian alsa-utils_1.2.8-1 (speaker-test voice prompts)", licence="GPL-2+",
        description="8 clean spoken prompts, 48 kHz PCM16 (resampled to 16 kHz by the recipes)",
        how_to_get="extract usr/share/sounds/alsa/*.wav from the Debian alsa-utils package into speech/alsa_voice/",
    ),
]
