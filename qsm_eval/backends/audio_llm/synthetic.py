"""Offline stand-ins for the Qwen2-Audio checkpoint: for the tests and the benchmark.

Nothing here downloads anything. It builds:

- a byte-level BPE tokenizer trained on a few sentences, carrying the real special tokens
  (<|endoftext|>, <|im_start|>, <|im_end|>, <|AUDIO|>, <|audio_bos|>, <|audio_eos|>) in
  their real relative order;
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

# Text the toy tokenizer learns its merges from: the built-in prompts' words and the answer
# words in the spellings a model could produce, so that whole answer words become tokens.
_TRAINING_TEXT = (
    "You are a helpful assistant. Does this audio clip contain human speech? "
    "Answer with exactly one word: SPEECH if it contains speech, NONSPEECH if it does not. "
    "Answer with the letter A or B only. A) speech B) no speech "
    "SPEECH NONSPEECH Speech Nonspeech speech nonspeech NON-SPEECH non-speech "
    "The sound is music, noise, a dog barking, a power saw, an announcer speaking. "
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


def build_tokenizer():
    """A PreTrainedTokenizerFast: byte-level BPE with the Qwen2-Audio special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, min_frequency=1, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator([_TRAINING_TEXT] * 4, trainer=trainer)
    core.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        padding_side="left", model_max_length=8192)


def build_processor():
    """A Qwen2AudioProcessor over the toy tokenizer and the real feature-extractor settings."""
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor

    features = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160,
                                       chunk_length=30, n_fft=400, return_attention_mask=True)
    # chat_template=None: the processor falls back to the template transformers ships for
    # Qwen2-Audio, the same text format as the hub checkpoint's.
    return Qwen2AudioProcessor(feature_extractor=features, tokenizer=build_tokenizer())


def tiny_config(tokenizer, *, init_range: float = 0.02):
    """A Qwen2AudioConfig with a few small layers, for tests that run in seconds on a CPU."""

    audio = {**REAL_AUDIO_CONFIG, "encoder_layers": 2, "encoder_attention_heads": 2,
             "encoder_ffn_dim": 64, "d_model": 32, "init_std": init_range,
             "initializer_range": init_range}
    text = {**REAL_TEXT_CONFIG, "vocab_size": len(tokenizer), "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 2048,
            "initializer_range": init_range}
    return _config(tokenizer, audio, text)


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


def save_tiny_checkpoint(directory: str | Path, *, seed: int = 0, init_range: float = 0.02) -> Path:
    """Write a complete tiny checkpoint (model, tokenizer, processor) with save_pretrained."""
    directory = Path(directory)
    processor = build_processor()
    model = build_model(tiny_config(processor.tokenizer, init_range=init_range), seed=seed)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
