"""Tokenization: pure functions from observations, actions, text and images to token ids."""

from gato.tokenization.spaces import Tokens, decode, encode, is_image_space, num_tokens, token_ranges
from gato.tokenization.vocab import Kind, TokenMap

__all__ = ["Kind", "TokenMap", "Tokens", "decode", "encode", "is_image_space", "num_tokens",
           "token_ranges"]
