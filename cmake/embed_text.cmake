# Writes OUTPUT, a C++ file defining `const std::string& SYMBOL()` that returns INPUT's bytes
# (a text asset embedded at build time). HEADER is the header that declares SYMBOL.
#   cmake -DINPUT=page.html -DOUTPUT=page_html.cpp -DHEADER=serve/page.h
#         -DSYMBOL=taia::serve::compare_page_html -P embed_text.cmake
file(READ "${INPUT}" content)
set(delimiter "taia_asset")
string(FIND "${content}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string end )${delimiter}\" and cannot be embedded")
endif()
string(REGEX MATCH "^(.*)::([^:]+)$" _ "${SYMBOL}")
set(ns "${CMAKE_MATCH_1}")
set(fn "${CMAKE_MATCH_2}")
# A raw string literal, split every 8 KiB (some compilers bound a literal's length; adjacent
# literals concatenate).
string(LENGTH "${content}" size)
set(pieces "\"\"\n")  # an empty asset is an empty string
set(pos 0)
while(pos LESS size)
  string(SUBSTRING "${content}" ${pos} 8192 piece)
  string(APPEND pieces "R\"${delimiter}(${piece})${delimiter}\"\n")
  math(EXPR pos "${pos} + 8192")
endwhile()
file(WRITE "${OUTPUT}.tmp" "// Generated from ${INPUT} by cmake/embed_text.cmake; do not edit.\n#include \"${HEADER}\"\n\nnamespace ${ns} {\n\nconst std::string& ${fn}() {\n  static const std::string text =\n${pieces};\n  return text;\n}\n\n}  // namespace ${ns}\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
