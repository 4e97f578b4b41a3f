"""Offline stand-ins for the encoder backends' checkpoints: for the tests and the benchmark.

Nothing here downloads anything. It builds, from configs and with random weights from a
fixed seed:

- Whisper: a byte-level BPE tokenizer carrying Whisper's real special tokens in their real
  order (<|endoftext|>, <|startoftranscript|>, language tokens, <|translate|>, <|transcribe|>,
  <|startoflm|>, <|startofprev|>, the no-speech token, <|notimestamps|>, timestamps), so that
  the no-speech token sits just before <|notimestamps|> as in every released checkpoint; the
  older multilingual spelling <|nocaptions|> on request; a WhisperFeatureExtractor; the model.
  ``WHISPER_LARGE_V3`` is the real large-v3 architecture (values from its config.json).
- AST: an Audio Spectrogram Transformer classifier whose id2label holds AudioSet names
  (Speech and its ontology children among others) and its feature extractor.
- wav2vec2 / HuBERT / WavLM encoders and their feature extractor, for the linear probe.
"""

from __future__ import annotations

from pathlib import Path

LANGUAGES = ("en", "zh", "de", "es", "ru")
TIMESTAMPS = tuple(f"<|{0.02 * i:.2f}|>" for i in range(8))

# Whisper large-v3's config.json (Hugging Face hub, openai/whisper-large-v3).
WHISPER_LARGE_V3 = {
    "vocab_size": 51866, "num_mel_bins": 128, "d_model": 1280, "encoder_layers": 32,
    "decoder_layers": 32, "encoder_attention_heads": 20, "decoder_attention_heads": 20,
    "encoder_ffn_dim": 5120, "decoder_ffn_dim": 5120, "max_source_positions": 1500,
    "max_target_positions": 448, "decoder_start_token_id": 50258, "bos_token_id": 50257,
    "eos_token_id": 50257, "pad_token_id": 50256,
}
WHISPER_LARGE_V3_NO_TIMESTAMPS = 50364   # its generation_config's no_timestamps_token_id

# AudioSet names (as in AST's id2label); the first eight are the Speech node and its children.
AUDIOSET_LABELS = (
    "Speech", "Male speech, man speaking", "Female speech, woman speaking",
    "Child speech, kid speaking", "Conversation", "Narration, monologue", "Babbling",
    "Speech synthesizer", "Music", "Dog", "Vehicle", "Silence",
)


def whisper_special_tokens(no_speech: str = "<|nospeech|>") -> list[str]:
    return ["<|endoftext|>", "<|startoftranscript|>", *(f"<|{code}|>" for code in LANGUAGES),
            "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", no_speech,
            "<|notimestamps|>", *TIMESTAMPS]


def build_whisper_tokenizer(no_speech: str = "<|nospeech|>"):
    """A WhisperTokenizer over a small byte-level BPE, with the real special tokens appended."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import WhisperTokenizer

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(["the quick brown fox speaks; is there speech in this clip?"] * 4,
                             trainer=trainer)
    model = core.model
    vocab = core.get_vocab()
    merges = [tuple(pair) for pair in model.get_merges()] if hasattr(model, "get_merges") else _merges(core)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": whisper_special_tokens(no_speech)[1:]})
    tokenizer.add_tokens(["<|endoftext|>"], special_tokens=True)
    return tokenizer


def _merges(core) -> list[tuple[str, str]]:
    import json

    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
            for m in json.loads(core.to_str())["model"]["merges"]]


def build_whisper(directory: str | Path, *, seed: int = 0, no_speech: str = "<|nospeech|>",
                  num_mel_bins: int = 80, init_std: float = 0.2, window_s: int = 30) -> Path:
    """Write a tiny Whisper checkpoint (model, tokenizer, feature extractor, generation config).

    ``window_s`` below the real 30 s makes a faster checkpoint (its encoder takes
    ``window_s * 50`` positions): the same code path, a shorter window.
    """
    import torch
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration)

    directory = Path(directory)
    tokenizer = build_whisper_tokenizer(no_speech)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in whisper_special_tokens(no_speech)}
    config = WhisperConfig(
        vocab_size=len(tokenizer), num_mel_bins=num_mel_bins, d_model=32, encoder_layers=1,
        decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_source_positions=50 * window_s, max_target_positions=32, init_std=init_std,
        decoder_start_token_id=ids["<|startoftranscript|>"], bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"])
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id, eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id, no_timestamps_token_id=ids["<|notimestamps|>"],
        lang_to_id={f"<|{c}|>": ids[f"<|{c}|>"] for c in LANGUAGES},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        is_multilingual=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    WhisperFeatureExtractor(feature_size=num_mel_bins, chunk_length=window_s).save_pretrained(directory)
    return directory


def whisper_large_v3(dtype=None, device=None, layers: int | None = None):
    """Whisper large-v3's architecture with random weights, and its feature extractor (benchmark).

    ``layers`` replaces the 32 encoder and 32 decoder layers (CPU runs); widths stay real.
    """
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype or previous)   # built in the target dtype: half the memory
    try:
        with torch.device(device or "cpu"):
            config = dict(WHISPER_LARGE_V3)
            if layers is not None:
                config.update(encoder_layers=layers, decoder_layers=layers)
            model = WhisperForConditionalGeneration(WhisperConfig(**config)).eval()
    finally:
        torch.set_default_dtype(previous)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=50258, no_timestamps_token_id=WHISPER_LARGE_V3_NO_TIMESTAMPS)
    return model, WhisperFeatureExtractor(feature_size=128)


def build_ast(directory: str | Path, *, seed: int = 0, labels=AUDIOSET_LABELS,
              max_length: int = 1024) -> Path:
    """Write a tiny AST AudioSet-style classifier (model and feature extractor)."""
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    directory = Path(directory)
    config = ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                       patch_size=16, frequency_stride=10, time_stride=10, max_length=max_length,
                       num_mel_bins=128, id2label=dict(enumerate(labels)),
                       label2id={name: i for i, name in enumerate(labels)}, initializer_range=0.2)
    torch.manual_seed(seed)
    ASTForAudioClassification(config).eval().save_pretrained(directory)
    ASTFeatureExtractor(max_length=max_length).save_pretrained(directory)
    return directory


def build_speech_encoder(directory: str | Path, model_type: str = "wav2vec2", *, seed: int = 0) -> Path:
    """Write a tiny wav2vec2-family encoder (wav2vec2, hubert or wavlm) and its feature extractor."""
    import torch
    from transformers import AutoConfig, AutoModel, Wav2Vec2FeatureExtractor

    directory = Path(directory)
    config = AutoConfig.for_model(
        model_type, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer", do_stable_layer_norm=True, initializer_range=0.2)
    torch.manual_seed(seed)
    AutoModel.from_config(config).eval().save_pretrained(directory)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(directory)
    return directory
