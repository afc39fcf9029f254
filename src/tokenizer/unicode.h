// UTF-8 helpers and GPT-2's byte-level alphabet (every byte maps to one printable code point,
// so byte-level BPE vocabularies are strings of those code points).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace taia {

// Length of the UTF-8 sequence starting with byte b (1 for invalid lead bytes).
size_t utf8_sequence_length(uint8_t b);
// Splits into UTF-8 characters; an invalid byte becomes a one-byte piece of its own.
std::vector<std::string_view> utf8_chars(std::string_view s);
std::string utf8_encode(uint32_t cp);
// Decodes one code point at s[i] (advancing i); invalid bytes decode as themselves (< 256).
uint32_t utf8_decode_at(std::string_view s, size_t& i);
// Length of the longest prefix of s that does not end inside an incomplete UTF-8 sequence.
size_t utf8_complete_prefix(std::string_view s);

// GPT-2 bytes_to_unicode: byte -> UTF-8 string of its stand-in code point, and back.
const std::array<std::string, 256>& byte_level_alphabet();
// Maps each byte of `bytes` to its stand-in ("Hello world" -> "HelloĠworld").
std::string byte_level_encode(std::string_view bytes);
// Inverse; code points outside the alphabet are copied through unchanged.
std::string byte_level_decode(std::string_view text);

}  // namespace taia
