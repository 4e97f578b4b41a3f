"""Offline stand-ins for the audio-LLM checkpoints: for the tests and the benchmark.

Nothing here downloads anything. It builds:

- a byte-level BPE tokenizer with the Qwen2 pre-tokenizer, merges learnt from a few
  sentences plus the ones that split SPEECH and NONSPEECH as the real Qwen2 vocabulary does,
  carrying the real special tokens (<|endoftext|>, <|im_start|>, <|im_end|>, <|AUDIO|>,
  <|audio_bos|>, <|audio_eos|>; <sound> for Audio Flamingo 3) in their real relative order;
- the processor (WhisperFeatureExtractor with 128 mel bins, as the checkpoint's
  preprocessor_config has, plus that tokenizer and the chat template transformers ships for
  Qwen2-Audio);
- model configs: a tiny one for tests, and the real Qwen2-Audio-7B architecture (values from
  the checkpoint's config.json) with optionally fewer layers, for the benchmark.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>",
                  "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>")
AF3_AUDIO_TOKEN = "<sound>"

# Text the toy tokenizer learns its merges from: the built-in prompts' words in lower case.
# Upper-case words get only the merges below, so the answer words split as on the real vocabulary.
_TRAINING_TEXT = (
    "you are a helpful assistant. does this audio clip contain human speech? "
    "answer with exactly one word: speech if it contains speech, nonspeech if it does not. "
    "answer with the letter a or b only. a) speech b) no speech "
    "speech nonspeech non-speech the sound is music, noise, a dog barking, a power saw, "
    "an announcer speaking. user system assistant "
)
# On the real Qwen2 vocabulary SPEECH is S|PE|ECH and NONSPEECH is N|ONS|PE|ECH: these merges,
# in this order, give exactly those splits (and SILENCE, SOUND, NO... stay apart from them).
REAL_SPLIT_MERGES = (("P", "E"), ("E", "C"), ("EC", "H"), ("O", "N"), ("ON", "S"))
# The pre-tokenizer pattern of the Qwen2 tokenizer (tokenizer.json of the Qwen2 checkpoints).
QWEN2_PRETOKENIZE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                     r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# The Audio Flamingo 3 chat format (nvidia/audio-flamingo-3-hf): ChatML, a default system
# turn, and the <sound> placeholder ahead of the user's text.
AF3_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'audio' %}<sound>{% endif %}{% endfor %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The real Qwen2-Audio-7B-Instruct config.json (Hugging Face hub, Qwen/Qwen2-Audio-7B-Instruct):
# audio_config as Whisper-large-v3's encoder, text_config a Qwen-7B decoder.
REAL_AUDIO_CONFIG = {
    "num_mel_bins": 128, "encoder_layers": 32, "encoder_attention_heads": 20,
    "encoder_ffn_dim": 5120, "d_model": 1280, "max_source_positions": 1500,
    "activation_function": "gelu", "scale_embedding": False,
}
REAL_TEXT_CONFIG = {
    "model_type": "qwen2", "vocab_size": 156032, "hidden_size": 4096, "intermediate_size": 11008,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
    "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "tie_word_embeddings": False,
}


def build_tokenizer(special_tokens=SPECIAL_TOKENS):
    """A PreTrainedTokenizerFast: byte-level BPE with the Qwen2 pre-tokenizer and special tokens.

    Lower-case merges are learnt from the prompts' words; the upper-case answer words get the
    real vocabulary's splits (REAL_SPLIT_MERGES), so scoring is tested on those splits.
    """
    import json

    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    learner = Tokenizer(models.BPE())
    learner.pre_tokenizer = pre
    trainer = trainers.BpeTrainer(vocab_size=600, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    learner.train_from_iterator([_TRAINING_TEXT] * 4, trainer=trainer)
    learnt = json.loads(learner.to_str())["model"]
    vocab = dict(learnt["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learnt["merges"]]
    for left, right in REAL_SPLIT_MERGES:
        merges.append((left, right))
        vocab.setdefault(left + right, len(vocab))
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    core.pre_tokenizer = pre
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(list(special_tokens))
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        padding_side="left", model_max_length=8192)


def build_processor():
    """A Qwen2AudioProcessor over the toy tokenizer and the real feature-extractor settings."""
    from transformers import Qwen2AudioProcessor

    # chat_template=None: the processor takes the template transformers ships for
    # Qwen2-Audio, the same text format as the Instruct hub checkpoint's.
    return Qwen2AudioProcessor(feature_extractor=_features(), tokenizer=build_tokenizer())


def tiny_config(tokenizer, *, init_range: float = 0.02):
    """A Qwen2AudioConfig with a few small layers, for tests that run in seconds on a CPU."""

    audio, text = _tiny_widths(init_range)
    return _config(tokenizer, {**REAL_AUDIO_CONFIG, **audio},
                   {**REAL_TEXT_CONFIG, **text, "vocab_size": len(tokenizer)})


def real_config(tokenizer, *, text_layers: int | None = None, audio_layers: int | None = None):
    """The Qwen2-Audio-7B architecture; fewer layers when asked (CPU benchmarks)."""
    audio = dict(REAL_AUDIO_CONFIG)
    text = dict(REAL_TEXT_CONFIG)
    if audio_layers is not None:
        audio["encoder_layers"] = audio_layers
    if text_layers is not None:
        text["num_hidden_layers"] = text_layers
    return _config(tokenizer, audio, text)


def _config(tokenizer, audio: dict, text: dict):
    from transformers import Qwen2AudioConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = {**text, "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"]}
    return Qwen2AudioConfig(audio_config={"model_type": "qwen2_audio_encoder", **audio},
                            text_config=text, audio_token_index=ids["<|AUDIO|>"])


def build_model(config, *, seed: int, dtype=None):
    """Random weights from a seeded generator: the same model on every run."""
    import torch
    from transformers import GenerationConfig, Qwen2AudioForConditionalGeneration

    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    # Built directly in the target dtype: a 7B model in float32 first would need twice the memory.
    torch.set_default_dtype(dtype or previous)
    try:
        model = Qwen2AudioForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    text = config.text_config
    model.generation_config = GenerationConfig(
        eos_token_id=text.eos_token_id, pad_token_id=text.pad_token_id, do_sample=False)
    return model.eval()


def _tiny_widths(init_range: float) -> tuple[dict, dict]:
    audio = {"encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 64, "d_model": 32,
             "init_std": init_range, "initializer_range": init_range}
    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 2048, "initializer_range": init_range}
    return audio, text


def _features():
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160,
                                   chunk_length=30, n_fft=400, return_attention_mask=True)


def build_af3_processor():
    """An AudioFlamingo3Processor: the Qwen2-style tokenizer with <sound>, Whisper features, AF3's chat format."""
    from transformers import AudioFlamingo3Processor

    tokenizer = build_tokenizer((*SPECIAL_TOKENS[:3], AF3_AUDIO_TOKEN))
    return AudioFlamingo3Processor(feature_extractor=_features(), tokenizer=tokenizer,
                                   chat_template=AF3_CHAT_TEMPLATE)


def af3_model(tokenizer, *, seed: int, init_range: float):
    """A tiny AudioFlamingo3ForConditionalGeneration with random weights from ``seed``."""
    import torch
    from transformers import AudioFlamingo3Config, AudioFlamingo3ForConditionalGeneration, GenerationConfig

    audio, text = _tiny_widths(init_range)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (*SPECIAL_TOKENS[:3], AF3_AUDIO_TOKEN)}
    config = AudioFlamingo3Config(
        audio_config={"model_type": "audioflamingo3_encoder", **REAL_AUDIO_CONFIG, **audio},
        text_config={**REAL_TEXT_CONFIG, **text, "vocab_size": len(tokenizer),
                     "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
                     "pad_token_id": ids["<|endoftext|>"]},
        audio_token_id=ids[AF3_AUDIO_TOKEN])
    torch.manual_seed(seed)
    model = AudioFlamingo3ForConditionalGeneration(config)
    model.generation_config = GenerationConfig(eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                                               do_sample=False)
    return model.eval()


# Qwen2.5-Omni's tokenizer names its multimodal tokens (the processor reads them as
# tokenizer.audio_token and so on); these are the ones the thinker's processor asks for.
OMNI_NAMED_TOKENS = {
    "audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>",
    "image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>",
}
OMNI_SPECIAL_TOKENS = (*SPECIAL_TOKENS, "<|IMAGE|>", "<|VIDEO|>", "<|vision_bos|>", "<|vision_eos|>")
# The Qwen2.5-Omni chat format (Qwen/Qwen2.5-Omni-7B): ChatML; each audio part is wrapped in
# <|audio_bos|>...<|audio_eos|> where it stands in the turn; the default system turn is the
# model card's "virtual human" one, used only when the chat has none.
OMNI_DEFAULT_SYSTEM = ("You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of "
                       "perceiving auditory and visual inputs, as well as generating text and speech.")
OMNI_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\n" + OMNI_DEFAULT_SYSTEM + "<|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif part['type'] == 'image' %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif part['type'] == 'video' %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_omni_processor():
    """A Qwen2_5OmniProcessor: the Qwen2-style tokenizer with Omni's named tokens, Whisper
    features, the Qwen2-VL image and video processors (unused here, but the processor needs
    them: the video processor is why this family needs torchvision), and Omni's chat format."""
    from transformers import (PreTrainedTokenizerFast, Qwen2_5OmniProcessor, Qwen2VLImageProcessor,
                              Qwen2VLVideoProcessor)

    core = build_tokenizer(OMNI_SPECIAL_TOKENS).backend_tokenizer
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left",
        model_max_length=32768, extra_special_tokens=OMNI_NAMED_TOKENS)
    return Qwen2_5OmniProcessor(image_processor=Qwen2VLImageProcessor(), video_processor=Qwen2VLVideoProcessor(),
                                feature_extractor=_features(), tokenizer=tokenizer,
                                chat_template=OMNI_CHAT_TEMPLATE)


def omni_model(tokenizer, *, seed: int, init_range: float):
    """A tiny Qwen2_5OmniForConditionalGeneration with random weights from ``seed``: the
    thinker (audio encoder, a one-block vision encoder, the text model) and, as the real
    checkpoint has them, a talker and token2wav for speech output that the profile never builds."""
    import torch
    from transformers import GenerationConfig, Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration

    audio, text = _tiny_widths(init_range)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in OMNI_SPECIAL_TOKENS}
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    # Multimodal rotary positions: (time, height, width) sections of half the head width.
    rope = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [1, 1, head_dim // 2 - 2]}
    media = {"audio_token_index": ids["<|AUDIO|>"], "image_token_index": ids["<|IMAGE|>"],
             "video_token_index": ids["<|VIDEO|>"], "audio_start_token_id": ids["<|audio_bos|>"],
             "audio_end_token_id": ids["<|audio_eos|>"]}
    thinker = {
        # The real thinker's audio encoder is Whisper-large-v3's shape with a projection to the
        # text width, reading its features in windows of 2 x n_window frames.
        "audio_config": {**REAL_AUDIO_CONFIG, **audio, "output_dim": text["hidden_size"], "n_window": 100},
        "vision_config": {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                          "out_hidden_size": text["hidden_size"], "fullatt_block_indexes": [0]},
        "text_config": {**text, "vocab_size": len(tokenizer), "rms_norm_eps": 1e-6, "rope_parameters": rope,
                        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
                        "pad_token_id": ids["<|endoftext|>"]},
        **media, "vision_start_token_id": ids["<|vision_bos|>"], "vision_end_token_id": ids["<|vision_eos|>"],
        "initializer_range": init_range,
    }
    codec = 64   # the talker's codec vocabulary; its four control codes at the top
    talker = {**media, "vocab_size": codec, "embedding_size": text["hidden_size"], "hidden_size": 32,
              "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
              "head_dim": head_dim, "rope_parameters": rope, "tts_codec_start_token_id": codec - 4,
              "tts_codec_end_token_id": codec - 3, "tts_codec_pad_token_id": codec - 2,
              "tts_codec_mask_token_id": codec - 1}
    token2wav = {
        "dit_config": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "head_dim": 16,
                       "emb_dim": 16, "enc_emb_dim": 16, "enc_dim": 16, "enc_channels": [16, 16, 16, 16, 48],
                       "enc_attention_channels": 8, "enc_se_channels": 8, "look_ahead_layers": [0],
                       "look_backward_layers": [0], "num_embeds": codec},
        "bigvgan_config": {"upsample_initial_channel": 16, "resblock_kernel_sizes": [3],
                           "resblock_dilation_sizes": [[1, 3, 5]], "upsample_rates": [2], "upsample_kernel_sizes": [4]},
    }
    torch.manual_seed(seed)
    model = Qwen2_5OmniForConditionalGeneration(Qwen2_5OmniConfig(
        thinker_config=thinker, talker_config=talker, token2wav_config=token2wav, enable_audio_output=True))
    model.thinker.generation_config = GenerationConfig(
        eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], do_sample=False)
    return model.eval()


# Voxtral's tokenizer is Tekken (mistral-common), kept in tekken.json: a byte-level BPE by
# rank, then special tokens by rank. The control tokens mistral-common's v7 instruct encoder
# looks up, at the ranks of the deprecated v7 list, [AUDIO] at rank 24 (the id VoxtralProcessor
# takes for it) and [BEGIN_AUDIO] after it; the other ranks are fillers.
TEKKEN_SPECIALS = {
    0: "<unk>", 1: "<s>", 2: "</s>", 3: "[INST]", 4: "[/INST]", 5: "[AVAILABLE_TOOLS]",
    6: "[/AVAILABLE_TOOLS]", 7: "[TOOL_RESULTS]", 8: "[/TOOL_RESULTS]", 9: "[TOOL_CALLS]", 10: "[IMG]",
    11: "<pad>", 12: "[IMG_BREAK]", 13: "[IMG_END]", 14: "[PREFIX]", 15: "[MIDDLE]", 16: "[SUFFIX]",
    17: "[SYSTEM_PROMPT]", 18: "[/SYSTEM_PROMPT]", 19: "[TOOL_CONTENT]", 20: "[ARGS]", 21: "[CALL_ID]",
    24: "[AUDIO]", 25: "[BEGIN_AUDIO]", 34: "[TRANSCRIBE]",
}
TEKKEN_NUM_SPECIAL = 100
# Voxtral's audio settings in tekken.json: 16 kHz, 12.5 audio tokens per second, Whisper's
# 128-bin log-mel front end, every clip padded to whole 30 s windows.
TEKKEN_AUDIO = {"sampling_rate": 16000, "frame_rate": 12.5, "chunk_length_s": 30.0,
                "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400}}


def _byte_level_ranks() -> list[bytes]:
    """The toy tokenizer's vocabulary as raw bytes in rank order: the 256 single bytes, then
    every merge in the order it was learnt (what tiktoken-style BPE ranks are)."""
    import json

    # The byte-level alphabet (GPT-2's, which tokenizers' ByteLevel uses): printable Latin-1
    # bytes stand for themselves, the others are shifted to code points from 256 on.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1),
                 *range(ord("\u00ae"), ord("\u00ff") + 1)]
    shifted = [b for b in range(256) if b not in printable]
    char_to_byte = {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(shifted)}
    ranks = {bytes([b]): b for b in range(256)}
    model = json.loads(build_tokenizer(()).backend_tokenizer.to_str())["model"]
    for merge in model["merges"]:
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        ranks.setdefault(bytes(char_to_byte[c] for c in left + right), len(ranks))
    return sorted(ranks, key=ranks.get)


def write_tekken(directory: str | Path) -> Path:
    """A tekken.json (v7, with Voxtral's audio settings) over the toy tokenizer's merges."""
    import base64
    import json

    vocab = [{"rank": rank, "token_bytes": base64.b64encode(piece).decode("ascii"),
              "token_str": piece.decode("utf-8", "replace")} for rank, piece in enumerate(_byte_level_ranks())]
    specials = [{"rank": rank, "token_str": TEKKEN_SPECIALS.get(rank, f"<SPECIAL_{rank}>"), "is_control": True}
                for rank in range(max(TEKKEN_SPECIALS) + 1)]
    tekken = {"config": {"pattern": QWEN2_PRETOKENIZE, "num_vocab_tokens": len(vocab),
                         "default_vocab_size": len(vocab) + TEKKEN_NUM_SPECIAL,
                         "default_num_special_tokens": TEKKEN_NUM_SPECIAL, "version": "v7"},
              "vocab": vocab, "special_tokens": specials, "audio": TEKKEN_AUDIO}
    path = Path(directory) / "tekken.json"
    path.write_text(json.dumps(tekken), encoding="utf-8")
    return path


def voxtral_model(*, vocab_size: int, seed: int, init_range: float):
    """A tiny VoxtralForConditionalGeneration (Whisper-shaped encoder, Llama text model)."""
    import torch
    from transformers import GenerationConfig, VoxtralConfig, VoxtralForConditionalGeneration

    audio, text = _tiny_widths(init_range)
    # The projector reads 4 encoder frames at a time as one vector of the encoder's feed-forward
    # width, so that width is 4 x d_model, as in the real encoder (1280 and 5120).
    audio = {**REAL_AUDIO_CONFIG, **audio, "encoder_ffn_dim": 4 * audio["d_model"]}
    special = {name: rank for rank, name in TEKKEN_SPECIALS.items()}
    config = VoxtralConfig(
        audio_config={"model_type": "voxtral_encoder", **audio},
        text_config={"model_type": "llama", **text, "vocab_size": vocab_size, "head_dim": 8,
                     "rope_theta": 100000000.0, "bos_token_id": special["<s>"],
                     "eos_token_id": special["</s>"], "pad_token_id": special["<pad>"]},
        audio_token_id=special["[AUDIO]"])
    torch.manual_seed(seed)
    model = VoxtralForConditionalGeneration(config)
    model.generation_config = GenerationConfig(eos_token_id=special["</s>"], pad_token_id=special["<pad>"],
                                               do_sample=False)
    return model.eval()


def save_voxtral_checkpoint(directory: Path, *, seed: int, init_range: float) -> None:
    """tekken.json and the feature extractor's settings beside the model, as the hub checkpoint."""
    from transformers import VoxtralProcessor
    from transformers.tokenization_mistral_common import MistralCommonBackend

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = MistralCommonBackend.from_pretrained(str(write_tekken(directory).parent))
    model = voxtral_model(vocab_size=len(tokenizer), seed=seed, init_range=init_range)
    model.save_pretrained(directory)
    VoxtralProcessor(feature_extractor=_features(), tokenizer=tokenizer).save_pretrained(directory)


TINY_PROFILES = ("qwen2-audio", "qwen2-audio-base", "audio-flamingo-3", "qwen2.5-omni", "voxtral")


def save_tiny_checkpoint(directory: str | Path, *, seed: int = 0, init_range: float = 0.02,
                         profile: str = "qwen2-audio") -> Path:
    """Write a complete tiny checkpoint (model, tokenizer, processor) with save_pretrained.

    ``qwen2-audio``: with the Instruct chat template as a file of its own, as the hub
    checkpoint has it; ``qwen2-audio-base``: the same without any chat template, as the base
    Qwen2-Audio-7B; ``audio-flamingo-3``: an AF3 checkpoint with its chat template;
    ``qwen2.5-omni``: a whole Qwen2.5-Omni checkpoint (thinker, talker, token2wav) with its template;
    ``voxtral``: a Voxtral checkpoint with its tekken.json (mistral-common encodes its chat).
    """
    directory = Path(directory)
    if profile == "audio-flamingo-3":
        processor = build_af3_processor()
        model = af3_model(processor.tokenizer, seed=seed, init_range=init_range)
    elif profile == "voxtral":
        save_voxtral_checkpoint(directory, seed=seed, init_range=init_range)
        return directory
    elif profile == "qwen2.5-omni":
        processor = build_omni_processor()
        model = omni_model(processor.tokenizer, seed=seed, init_range=init_range)
    elif profile in ("qwen2-audio", "qwen2-audio-base"):
        processor = build_processor()
        model = build_model(tiny_config(processor.tokenizer, init_range=init_range), seed=seed)
    else:
        raise ValueError(f"no tiny checkpoint for profile {profile!r}; one of {', '.join(TINY_PROFILES)}")
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    if profile == "qwen2-audio-base":
        (directory / "chat_template.jinja").unlink()
    return directory
